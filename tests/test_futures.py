"""ember.futures against torch.futures: the same script run on both, then the threaded and
error paths."""
import threading

import pytest
import torch

import ember


def _script(m):
    """A trace of Future's observable behaviour under module ``m``."""
    F = m.futures
    out = []
    f = F.Future()
    out.append(f.done())
    g = f.then(lambda x: x.wait() + 1)
    h = g.then(lambda x: x.value() * 10)
    f.set_result(3)
    out += [f.done(), f.value(), f.wait(), g.wait(), h.wait()]
    seen = []
    d = F.Future()
    d.add_done_callback(lambda x: seen.append(("cb", x.value())))
    d.set_result(9)
    d.add_done_callback(lambda x: seen.append(("late", x.value())))  # already done: runs now
    out.append(seen)
    a1, a2 = F.Future(), F.Future()
    both = F.collect_all([a1, a2])
    out.append(both.done())
    a2.set_result("b")
    out.append(both.done())
    a1.set_result("a")
    out += [both.done(), [x.value() for x in both.wait()], F.wait_all([a1, a2])]
    err = F.Future()
    err.set_exception(ValueError("boom"))
    out.append(err.then(lambda x: 5).wait())  # the callback may ignore the error
    return out


def test_same_as_torch():
    assert _script(ember) == _script(torch)


def test_annotations_and_types():
    assert ember.futures.Future[int] is not None  # Future is Generic, as torch's
    assert isinstance(ember.futures.Future(devices=[]), ember.futures.Future)


ERRORS = [  # (call, the exception both raise, a fragment of its message)
    (lambda F: _failed(F).wait(), ValueError, "boom"),
    (lambda F: _failed(F).value(), ValueError, "boom"),
    (lambda F: F.wait_all([F.Future(), _failed(F)][1:]), ValueError, "boom"),
    (lambda F: _done(F).set_result(2), RuntimeError,
     "Attempting to mark a completed Future as complete again"),
    (lambda F: F.Future().set_exception(3), AssertionError, "is of type <class 'int'>, not an "
                                                            "Exception."),
    (lambda F: _then_fails(F).wait(), RuntimeError,
     "Got the following error when running the callback: ZeroDivisionError: division by zero"),
    (lambda F: F.Future().value(), RuntimeError, ""),
]


def _failed(F):
    f = F.Future()
    f.set_exception(ValueError("boom"))
    return f


def _done(F):
    f = F.Future()
    f.set_result(1)
    return f


def _then_fails(F):
    f = F.Future()
    g = f.then(lambda x: 1 / 0)
    f.set_result(1)
    return g


@pytest.mark.parametrize("i", range(len(ERRORS)))
def test_errors(i):
    call, exc, msg = ERRORS[i]
    for m in (torch, ember):
        with pytest.raises(exc) as info:
            call(m.futures)
        assert msg in str(info.value), f"{m.__name__}: {info.value}"


def test_wait_across_threads():
    f = ember.futures.Future()
    results = []
    waiters = [threading.Thread(target=lambda: results.append(f.wait())) for _ in range(3)]
    for t in waiters:
        t.start()
    setter = threading.Timer(0.05, f.set_result, args=(ember.ones(2),))
    setter.start()
    for t in waiters:
        t.join(5)
    setter.join()
    assert len(results) == 3 and all(r.tolist() == [1.0, 1.0] for r in results)
    assert ember.futures.collect_all([]).wait() == []
