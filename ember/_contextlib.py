"""Context managers that also decorate functions (PyTorch's ``torch/utils/_contextlib.py``).

A leaf module: the grad modes (``autograd/grad_mode.py``) and anomaly mode build on it.
"""
from __future__ import annotations

import functools
import inspect


class _DecoratorContextManager:
    """Lets a context manager also decorate functions; a generator runs each step in it."""
    __slots__ = ()  # (so a slotted subclass has no __dict__: the grad modes)

    def __call__(self, fn):
        if inspect.isgeneratorfunction(fn):
            return self._wrap_generator(fn)

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with self.clone():
                return fn(*args, **kwargs)
        return wrapper

    def _wrap_generator(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            gen = fn(*args, **kwargs)
            try:
                with self.clone():
                    response = gen.send(None)
                while True:
                    try:
                        request = yield response
                    except GeneratorExit:
                        with self.clone():
                            gen.close()
                        raise
                    except BaseException as e:
                        with self.clone():
                            response = gen.throw(e)
                    else:
                        with self.clone():
                            response = gen.send(request)
            except StopIteration as e:
                return e.value
        return wrapper

    def clone(self):
        return self.__class__()
