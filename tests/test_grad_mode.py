"""Grad modes (``no_grad``, ``enable_grad``, ``set_grad_enabled``, ``inference_mode``): the
slotted managers of ``autograd/grad_mode.py`` against torch's, and what one costs to enter.

tests/test_autograd.py holds the basic traces (nesting, bare and called decorators, generators,
threads); this file covers what the one-frame construction could get wrong."""
import sys
import threading

import pytest
import torch

import ember

# (name, build the manager from a module); each entered, checked and left as torch's
MODES = [
    ("no_grad", lambda m: m.no_grad()),
    ("enable_grad", lambda m: m.enable_grad()),
    ("set_grad_enabled(False)", lambda m: m.set_grad_enabled(False)),
    ("set_grad_enabled(True)", lambda m: m.set_grad_enabled(True)),
    ("inference_mode()", lambda m: m.inference_mode()),
    ("inference_mode(True)", lambda m: m.inference_mode(True)),
    ("inference_mode(False)", lambda m: m.inference_mode(False)),
    ("inference_mode(mode=False)", lambda m: m.inference_mode(mode=False)),
]
IDS = [name for name, _ in MODES]


def _state(m):
    return m.is_grad_enabled(), m.is_inference_mode_enabled()


def _under(m, outer):
    """The state inside each mode, entered from each outer state, then after leaving it."""
    out = []
    for _, make in MODES:
        with outer(m):
            before = _state(m)
            cm = make(m)
            with cm as v:
                inside = _state(m)
                # (in inference mode torch records nothing even with grad mode on; ember's
                # ops read grad mode alone, so that case is not compared here)
                r = None if inside[1] else (m.ones(1, requires_grad=True) * 2).requires_grad
            out.append((v, inside, r, _state(m) == before))
    return out


OUTERS = [lambda m: m.enable_grad(), lambda m: m.no_grad(), lambda m: m.inference_mode(),
          lambda m: m.inference_mode(False)]


@pytest.mark.parametrize("outer", range(len(OUTERS)))
def test_each_mode_from_each_state_matches_torch(outer):
    assert _under(ember, OUTERS[outer]) == _under(torch, OUTERS[outer])
    assert _state(ember) == (True, False)


def _nested(m, make):
    """The same manager object entered twice in turn, and nested inside another of its kind
    and inside itself left in order; the state after each exit."""
    cm, seen = make(m), []
    for _ in range(2):
        with cm:
            seen.append(_state(m))
        seen.append(_state(m))
    with make(m):
        with make(m):
            seen.append(_state(m))
        seen.append(_state(m))
    seen.append(_state(m))
    return seen


@pytest.mark.parametrize("make", [mk for _, mk in MODES], ids=IDS)
def test_reentered_and_nested_managers_unwind_as_torch(make):
    assert _nested(ember, make) == _nested(torch, make)


@pytest.mark.parametrize("make", [mk for _, mk in MODES], ids=IDS)
def test_an_exception_inside_restores_the_state(make):
    for m in (ember, torch):
        with m.no_grad():
            with pytest.raises(KeyError):
                with make(m):
                    raise KeyError("x")
            assert _state(m) == (False, False)
        assert _state(m) == (True, False)


@pytest.mark.parametrize("name", ["no_grad", "enable_grad", "inference_mode"])
def test_bare_and_called_decorators_on_functions_and_methods(name):
    def trace(m):
        mode = getattr(m, name)

        class K:
            @mode
            def bare(self, a, *, b=1):
                """doc"""
                return _state(m), a + b

            @mode()
            def called(self, a):
                return _state(m), a
        k = K()
        with m.no_grad():
            r = [k.bare(1, b=2), k.called(3)]
        r += [k.bare(4), _state(m), K.bare.__name__, K.bare.__doc__]
        return r
    assert trace(ember) == trace(torch)


def test_inference_mode_keyword_and_bool_forms():
    for m in (ember, torch):
        @m.inference_mode(mode=False)
        def off():
            return _state(m)
        with m.inference_mode():
            assert off() == (True, False)
            assert _state(m) == (False, True)


def test_decorated_generator_in_inference_mode_sends_throws_and_closes():
    def trace(m):
        log = []

        @m.inference_mode()
        def gen():
            try:
                got = yield _state(m)
                log.append(("sent", got, _state(m)))
                try:
                    yield 1
                except ValueError:
                    log.append(("thrown", _state(m)))
                yield 2
            finally:
                log.append(("closed", _state(m)))
        g = gen()
        log.append(next(g))
        log.append(g.send("hi"))
        log.append(_state(m))
        log.append(g.throw(ValueError))
        g.close()
        log.append(_state(m))
        return log
    assert trace(ember) == trace(torch)


def test_inference_mode_is_thread_local():
    for m in (ember, torch):
        seen, ev, done = [], threading.Event(), threading.Event()

        def worker():
            with m.inference_mode():
                seen.append(_state(m))
                ev.set()
                done.wait(5)
        th = threading.Thread(target=worker)
        th.start()
        ev.wait(5)
        assert _state(m) == (True, False)
        with m.inference_mode(False):
            assert _state(m) == (True, False)
        done.set()
        th.join()
        assert seen == [(False, True)]


def test_set_grad_enabled_takes_effect_when_called_and_undoes_on_exit():
    for m in (ember, torch):
        cm = m.set_grad_enabled(False)
        assert not m.is_grad_enabled()  # before any ``with``, as PyTorch's
        with cm:
            assert not m.is_grad_enabled()
        assert m.is_grad_enabled()

        @m.set_grad_enabled(False)
        def f():
            return m.is_grad_enabled()
        assert m.is_grad_enabled() and not f() and m.is_grad_enabled()


def test_mode_classes_are_separate_as_torch():
    names = ["no_grad", "enable_grad", "set_grad_enabled", "inference_mode"]
    for a in names:
        for b in names:
            assert (issubclass(getattr(ember, a), getattr(ember, b)) ==
                    issubclass(getattr(torch, a), getattr(torch, b))), (a, b)
        assert isinstance(getattr(ember, a)(*([False] if a == "set_grad_enabled" else [])),
                          getattr(ember, a))
    ember.set_grad_enabled(True)


def test_clone_keeps_the_mode():
    for make in (lambda: ember.inference_mode(False), ember.no_grad,
                 lambda: ember.set_grad_enabled(False)):
        cm = make()
        c = cm.clone()
        assert type(c) is type(cm) and c.mode == cm.mode and c is not cm
    ember.set_grad_enabled(True)


def test_a_mode_is_a_slotted_object():
    for cm in (ember.no_grad(), ember.enable_grad(), ember.inference_mode(),
               ember.set_grad_enabled(True)):
        assert not hasattr(cm, "__dict__")


def _python_calls(fn):
    """The Python functions called while ``fn`` runs (sys.setprofile sees each frame)."""
    calls = []

    def prof(frame, event, arg):
        if event == "call":
            calls.append(frame.f_code.co_name)
    sys.setprofile(prof)
    try:
        fn()
    finally:
        sys.setprofile(None)
    return calls[1:]  # (the first is fn itself)


@pytest.mark.parametrize("make, want", [
    (lambda: ember.no_grad(), ["__call__", "__enter__", "__exit__"]),
    (lambda: ember.enable_grad(), ["__call__", "__enter__", "__exit__"]),
    (lambda: ember.inference_mode(), ["__call__", "__enter__", "__exit__"]),
    (lambda: ember.inference_mode(False), ["__call__", "__enter__", "__exit__"]),
    (lambda: ember.set_grad_enabled(False), ["__init__", "__enter__", "__exit__"]),
])
def test_entering_a_mode_runs_one_frame_each_to_build_enter_and_leave(make, want):
    def use():
        with make():
            pass
    assert _python_calls(use)[1:] == want  # (after the lambda)


@pytest.mark.parametrize("name", ["no_grad", "enable_grad"])
def test_orig_func_keyword_decorates_as_torch(name):
    """``no_grad(orig_func=f)`` is PyTorch's ``__new__`` keyword: it returns ``f`` decorated."""
    def trace(m):
        f = getattr(m, name)(orig_func=lambda: _state(m))
        with m.no_grad():
            return f(), f.__name__
    assert trace(ember) == trace(torch)


def test_a_users_subclass_runs_its_init_as_torch():
    """A subclass of ``no_grad``/``inference_mode`` is made as any class: its ``__init__`` runs
    (ember's own modes skip ``__init__`` for speed); its clone and decorator forms work."""
    def trace(m):
        class counted(m.no_grad):
            def __init__(self):
                super().__init__()
                self.calls = 0

            def __enter__(self):
                self.calls += 1
                return super().__enter__()

        class labelled(m.inference_mode):
            def __init__(self, mode=True):
                super().__init__(mode)
                self.label = "eval"

        c = counted()
        with c:
            inside = _state(m)
        with c:
            pass
        g = labelled(False)
        with g:
            lab = (g.label, _state(m))
        deco = labelled()(lambda: _state(m))
        return inside, c.calls, lab, deco(), counted()(lambda: _state(m))(), _state(m)
    assert trace(ember) == trace(torch)
