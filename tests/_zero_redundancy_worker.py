"""Run by tests/test_compile_stance_indices.py under ``mpiexec -n 2``: ZeroRedundancyOptimizer
(AdamW, lr set on param_groups each step) against a plain AdamW on the same model and data;
prints one line per rank."""
import sys
import numpy as np
import ember as torch
import ember.distributed as dist
from ember.distributed.optim import ZeroRedundancyOptimizer
dist.init_process_group("gloo")
rank = dist.get_rank()
def make():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.Tanh(), torch.nn.Linear(7, 3))
m, ref = make(), make()
zo = ZeroRedundancyOptimizer(m.parameters(), torch.optim.AdamW, lr=0.01, weight_decay=0.1)
ro = torch.optim.AdamW(ref.parameters(), lr=0.01, weight_decay=0.1)
torch.manual_seed(1)
for step in range(6):
    x = torch.randn(4, 5)
    for model, opt in ((m, zo), (ref, ro)):
        opt.zero_grad()
        model(x).pow(2).sum().backward()
        for g in opt.param_groups:
            g["lr"] = 0.01 * (step + 1)
        opt.step()
ok = all(np.allclose(a.detach().numpy(), b.detach().numpy(), rtol=1e-6, atol=1e-7)
         for a, b in zip(m.parameters(), ref.parameters()))
own = len(zo.optim.state)
zo.consolidate_state_dict(0)
sd = zo.state_dict() if rank == 0 else None
for r in range(dist.get_world_size()):  # one rank at a time, so lines do not interleave
    if r == rank:
        print(f"rank {rank} ok {ok} own {own} total {len(list(m.parameters()))}"
              + (f" states {sorted(sd['state'])}" if sd else ""), flush=True)
    dist.barrier()
dist.destroy_process_group()
