"""Benchmark workloads: mixed precision (registered when bench.workloads is imported).

``amp_mlp_step`` and ``amp_gpt_step`` are ``mlp_step_adam`` and ``gpt_step`` with the forward
and the loss under ``autocast("cpu", dtype=bfloat16)``; each line also prints the AMP/fp32
time ratio of both frameworks.  ``python -m bench.wl_amp`` prints the activation memory
(bytes saved for backward, fp32 and AMP) of both steps in both frameworks.
"""
from __future__ import annotations

from .harness import workload
from .workloads import _rng, _leaf, _mlp_model, _mlp_data
from .wl_attention import _gpt_model, GPT


def _mlp(mod):
    rng = _rng()
    model = _mlp_model(mod, rng)
    x, target = _mlp_data(mod, rng)
    return model, (x,), target, mod.nn.CrossEntropyLoss(), mod.optim.Adam(model.parameters(),
                                                                          lr=1e-3)


def _gpt(mod):
    rng = _rng()
    model = _gpt_model(mod, rng)
    c = GPT
    data = rng.integers(0, c["vocab"], (c["batch"], c["seq"] + 1))
    idx = _leaf(mod, data[:, :-1])
    target = _leaf(mod, data[:, 1:].reshape(-1))
    F = mod.nn.functional

    def loss_fn(logits, t):
        return F.cross_entropy(logits.reshape(-1, c["vocab"]), t)
    return model, (idx,), target, loss_fn, mod.optim.AdamW(model.parameters(), lr=1e-3)


def _amp_step(mod, build):
    """A training step whose forward and loss run under ``autocast(cpu, bfloat16)``; it returns
    the float32 loss (the updated parameters differ from PyTorch's by bfloat16 rounding)."""
    model, inputs, target, loss_fn, opt = build(mod)

    def step():
        opt.zero_grad()
        with mod.autocast("cpu", dtype=mod.bfloat16):
            loss = loss_fn(model(*inputs), target)
        loss.backward()
        opt.step()
        return loss.detach().reshape(1)

    return step, lambda s: s * 1e3


@workload("amp_mlp_step", "ms/step", ratio_to=("mlp_step_adam", "amp/fp32"))
def amp_mlp_step(mod):
    """``mlp_step_adam`` (784-512-256-10 MLP, batch 128, Adam) with its forward and loss under
    ``autocast("cpu", dtype=bfloat16)``: the three Linear layers run in bfloat16."""
    return _amp_step(mod, _mlp)


@workload("amp_gpt_step", "ms/step", ratio_to=("gpt_step", "amp/fp32"))
def amp_gpt_step(mod):
    """``gpt_step`` (2-layer GPT, d_model 128, AdamW) with its forward and loss under
    ``autocast("cpu", dtype=bfloat16)``: linear layers and attention run in bfloat16."""
    return _amp_step(mod, _gpt)


def saved_bytes(mod, build, amp: bool) -> int:
    """Bytes the forward saves for backward (each distinct storage once, parameters excluded):
    the activation memory a training step holds at its peak."""
    model, inputs, target, loss_fn, _ = build(mod)
    seen = {}

    def key(t):
        if mod.__name__ == "torch":
            return t.untyped_storage().data_ptr()
        a = t._data
        while getattr(a, "base", None) is not None:
            a = a.base
        return id(a)

    params = {key(p) for p in model.parameters()}  # their views (w.t()) are not activations

    def pack(t):
        k = key(t)
        if k not in params:
            seen.setdefault(k, t.numel() * t.element_size())
        return t

    with mod.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        with mod.autocast("cpu", dtype=mod.bfloat16, enabled=amp):
            loss = loss_fn(model(*inputs), target)
    loss.backward()
    return sum(seen.values())


def main() -> None:
    import ember
    import torch
    for name, build in (("mlp", _mlp), ("gpt", _gpt)):
        for m in (ember, torch):
            fp32, amp = saved_bytes(m, build, False), saved_bytes(m, build, True)
            print(f"{name} {m.__name__:<6} saved for backward: fp32 {fp32 / 2**20:7.2f} MiB   "
                  f"amp {amp / 2**20:7.2f} MiB   amp/fp32 {amp / fp32:.2f}")


if __name__ == "__main__":
    main()
