"""Shared pieces of the numba-kernel tests: counting a kernel's calls, a short training run."""


def spy_calls(monkeypatch, kern, names):
    """``{name: count}`` of the calls of each ``kern.<name>`` (the switch changes which code
    runs, not only its name)."""
    calls = dict.fromkeys(names, 0)
    for name in names:
        real = getattr(kern, name)

        def counted(*a, _real=real, _name=name):
            calls[_name] += 1
            return _real(*a)
        monkeypatch.setattr(kern, name, staticmethod(counted))
    return calls


def train(f, opt, x, y, steps, whole=False):
    """The losses of ``steps`` steps: ``f`` is the whole step when ``whole``, else the loss
    (then zero_grad, backward and ``opt.step()`` around it)."""
    losses = []
    for _ in range(steps):
        if whole:
            out = f(x, y)
        else:
            opt.zero_grad()
            out = f(x, y)
            out.backward()
            opt.step()
        losses.append(out.item())
    return losses
