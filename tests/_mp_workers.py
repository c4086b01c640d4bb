"""Worker functions for tests/test_multiprocessing.py: importable by spawned children
without importing torch (each child imports only ember)."""
import ember


def add_rank(i, shared, lock):
    """Hogwild-style: each worker adds (rank + 1) to the shared tensor, 10 times."""
    for _ in range(10):
        with lock:
            shared.add_(i + 1)


def raise_in_child(i):
    if i == 1:
        raise ValueError(f"boom from {i}")


def exit_in_child(i, code):
    import sys
    sys.exit(code)


def sgd_worker(i, model, steps):
    """A few SGD steps on the shared model (torch's Hogwild example, in small)."""
    ember.manual_seed(i)
    opt = ember.optim.SGD(model.parameters(), lr=0.1)
    x = ember.randn(16, 4)
    y = x.sum(1, keepdim=True)
    for _ in range(steps):
        opt.zero_grad()
        ember.nn.functional.mse_loss(model(x), y).backward()
        opt.step()


def echo_double(q_in, q_out):
    t = q_in.get()
    t.mul_(2)  # in place: the sender's memory
    q_out.put(t.sum().item())


def adam_worker(i, model, steps):
    """Adam on the shared model: its updates must land in the shared memory."""
    opt = ember.optim.Adam(model.parameters(), lr=0.05)
    x = ember.ones(8, 4)
    for _ in range(steps):
        opt.zero_grad()
        model(x).sum().backward()
        opt.step()
