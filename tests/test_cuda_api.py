"""ember.cuda, ember.accelerator, ember.mps and ember.backends against the CPU-only torch 2.13:
each call returns torch's value or raises torch's exception type (with a message that says
ember has no GPU backend)."""
from __future__ import annotations

import warnings

import pytest
import torch

import ember

GPU_MSG = "ember has no GPU backend"


def outcome(fn, m):
    """("ok", value) or ("raise", exception type) for ``fn(m)``; objects compare by class name."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            value = fn(m)
    except Exception as e:  # noqa: BLE001  (the type is what is compared)
        return "raise", type(e), str(e)
    if value is not None and not isinstance(value, (bool, int, float, str, list, dict, tuple)):
        value = type(value).__name__
    return "ok", value, None


def assert_same(fn, ember_mod, torch_mod, message=GPU_MSG):
    e, t = outcome(fn, ember_mod), outcome(fn, torch_mod)
    assert e[:2] == t[:2], (e, t)
    if e[0] == "raise" and message is not None:
        assert message in e[2], e[2]


CUDA_CALLS = {
    "is_available": lambda m: m.is_available(),
    "device_count": lambda m: m.device_count(),
    "is_initialized": lambda m: m.is_initialized(),
    "init": lambda m: m.init(),
    "current_device": lambda m: m.current_device(),
    "set_device(0)": lambda m: m.set_device(0),
    "set_device('cuda:0')": lambda m: m.set_device("cuda:0"),
    "set_device(-1)": lambda m: m.set_device(-1),
    "get_device_name()": lambda m: m.get_device_name(),
    "get_device_name(0)": lambda m: m.get_device_name(0),
    "get_device_properties(0)": lambda m: m.get_device_properties(0),
    "get_device_capability()": lambda m: m.get_device_capability(),
    "synchronize": lambda m: m.synchronize(),
    "is_bf16_supported": lambda m: m.is_bf16_supported(),
    "is_bf16_supported(False)": lambda m: m.is_bf16_supported(including_emulation=False),
    "is_tf32_supported": lambda m: m.is_tf32_supported(),
    "get_arch_list": lambda m: m.get_arch_list(),
    "get_gencode_flags": lambda m: m.get_gencode_flags(),
    "mem_get_info": lambda m: m.mem_get_info(),
    "ipc_collect": lambda m: m.ipc_collect(),
    "manual_seed": lambda m: m.manual_seed(0),
    "manual_seed(big)": lambda m: m.manual_seed(2**70),
    "manual_seed_all": lambda m: m.manual_seed_all(1),
    "seed": lambda m: m.seed(),
    "seed_all": lambda m: m.seed_all(),
    "initial_seed": lambda m: m.initial_seed(),
    "get_rng_state": lambda m: m.get_rng_state(),
    "get_rng_state('cuda:1')": lambda m: m.get_rng_state("cuda:1"),
    "get_rng_state_all": lambda m: m.get_rng_state_all(),
    "set_rng_state_all([])": lambda m: m.set_rng_state_all([]),
    "empty_cache": lambda m: m.empty_cache(),
    "memory_stats": lambda m: m.memory_stats(),
    "memory_allocated": lambda m: m.memory_allocated(),
    "memory_allocated(0)": lambda m: m.memory_allocated(0),
    "max_memory_allocated": lambda m: m.max_memory_allocated(),
    "memory_reserved": lambda m: m.memory_reserved(),
    "max_memory_reserved": lambda m: m.max_memory_reserved(),
    "reset_peak_memory_stats": lambda m: m.reset_peak_memory_stats(),
    "reset_max_memory_allocated": lambda m: m.reset_max_memory_allocated(),
    "set_per_process_memory_fraction": lambda m: m.set_per_process_memory_fraction(0.5),
    "Stream()": lambda m: m.Stream(),
    "Event()": lambda m: m.Event(),
    "current_stream": lambda m: m.current_stream(),
    "default_stream": lambda m: m.default_stream(),
    "stream(None)": lambda m: m.stream(None),
    "device(0)": lambda m: m.device(0),
    "device('cuda:1').idx": lambda m: m.device("cuda:1").idx,
    "device(None).idx": lambda m: m.device(None).idx,
}


@pytest.mark.parametrize("name", list(CUDA_CALLS))
def test_cuda_matches_torch(name):
    assert_same(CUDA_CALLS[name], ember.cuda, torch.cuda)


# bad input: the types torch raises, with torch's own messages (they name the bad value)
BAD_CUDA = {
    "set_device('cpu')": lambda m: m.set_device("cpu"),
    "set_device(None)": lambda m: m.set_device(None),
    "device('cpu')": lambda m: m.device("cpu"),
    "manual_seed('a')": lambda m: m.manual_seed("a"),
    "set_rng_state(5)": lambda m: m.set_rng_state(5),
}


@pytest.mark.parametrize("name", list(BAD_CUDA))
def test_cuda_bad_input_matches_torch(name):
    e, t = outcome(BAD_CUDA[name], ember.cuda), outcome(BAD_CUDA[name], torch.cuda)
    assert e[0] == t[0] == "raise" and e[1] is t[1], (e, t)


def test_set_rng_state_queues_a_copy_as_torch():
    assert ember.cuda.set_rng_state(ember.random.get_rng_state()) is None
    assert torch.cuda.set_rng_state(torch.random.get_rng_state()) is None


def ctx(m, make):
    with make(m):
        return "entered"


CONTEXTS = {
    "device(0)": lambda m: m.device(0),
    "device('cuda:0')": lambda m: m.device("cuda:0"),
    "device(-1)": lambda m: m.device(-1),
    "device(None)": lambda m: m.device(None),
    "stream(None)": lambda m: m.stream(None),
    "stream(1)": lambda m: m.stream(1),
}


@pytest.mark.parametrize("name", list(CONTEXTS))
def test_cuda_context_managers_match_torch(name):
    assert_same(lambda m: ctx(m, CONTEXTS[name]), ember.cuda, torch.cuda, message=None)


def test_device_of_a_cpu_tensor_is_a_no_op():
    with ember.cuda.device_of(ember.zeros(2)):
        pass
    assert ember.cuda.device_of(ember.zeros(2)).idx == torch.cuda.device_of(torch.zeros(2)).idx


def test_cuda_deprecation_warnings_as_torch():
    for m in (ember.cuda, torch.cuda):
        with pytest.warns(FutureWarning, match="reset_peak_memory_stats"):
            with pytest.raises(AttributeError):
                m.reset_max_memory_allocated()


ACCEL_CALLS = {
    "is_available": lambda m: m.is_available(),
    "current_accelerator": lambda m: m.current_accelerator(),
    "current_accelerator(True)": lambda m: m.current_accelerator(check_available=True),
    "device_count": lambda m: m.device_count(),
    "synchronize": lambda m: m.synchronize(),
    "synchronize(0)": lambda m: m.synchronize(0),
    "current_device_index": lambda m: m.current_device_index(),
    "current_device_idx": lambda m: m.current_device_idx(),
    "set_device_index(0)": lambda m: m.set_device_index(0),
    "set_device_index(-1)": lambda m: m.set_device_index(-1),
    "set_device_idx(1)": lambda m: m.set_device_idx(1),
    "current_stream": lambda m: m.current_stream(),
    "device_index(0)": lambda m: m.device_index(0),
    "with device_index(0)": lambda m: ctx(m, lambda m: m.device_index(0)),
    "with device_index(None)": lambda m: ctx(m, lambda m: m.device_index(None)),
    "empty_cache": lambda m: m.empty_cache(),
    "memory_stats": lambda m: m.memory_stats(),
    "memory_allocated": lambda m: m.memory_allocated(),
    "max_memory_allocated": lambda m: m.max_memory_allocated(),
    "memory_reserved": lambda m: m.memory_reserved(),
    "max_memory_reserved": lambda m: m.max_memory_reserved(),
    "reset_peak_memory_stats": lambda m: m.reset_peak_memory_stats(),
    "reset_accumulated_memory_stats": lambda m: m.reset_accumulated_memory_stats(),
    "get_memory_info": lambda m: m.get_memory_info(),
    # bad input
    "set_device_index('cpu')": lambda m: m.set_device_index("cpu"),
    "set_device_index('cuda:0')": lambda m: m.set_device_index("cuda:0"),
    "set_device_index(None)": lambda m: m.set_device_index(None),
    "set_device_index(1.5)": lambda m: m.set_device_index(1.5),
    "synchronize('cpu')": lambda m: m.synchronize("cpu"),
    "set_stream(None)": lambda m: m.set_stream(None),
}


@pytest.mark.parametrize("name", list(ACCEL_CALLS))
def test_accelerator_matches_torch(name):
    assert_same(ACCEL_CALLS[name], ember.accelerator, torch.accelerator, message=None)


def test_accelerator_messages_name_the_missing_backend():
    with pytest.raises(RuntimeError, match="Cannot access accelerator device when none is "
                                           "available.*ember has no GPU backend"):
        ember.accelerator.synchronize()
    with pytest.warns(FutureWarning, match="current_device_index"):
        with pytest.raises(RuntimeError):
            ember.accelerator.current_device_idx()


MPS_CALLS = {
    "is_available": lambda m: m.is_available(),
    "device_count": lambda m: m.device_count(),
    "manual_seed": lambda m: m.manual_seed(3),
    "seed": lambda m: m.seed(),
    "get_rng_state": lambda m: m.get_rng_state(),
    "set_rng_state": lambda m: m.set_rng_state(
        (ember if m is ember.mps else torch).random.get_rng_state()),
    "synchronize": lambda m: m.synchronize(),
    "empty_cache": lambda m: m.empty_cache(),
    "set_per_process_memory_fraction": lambda m: m.set_per_process_memory_fraction(0.5),
    "current_allocated_memory": lambda m: m.current_allocated_memory(),
    "driver_allocated_memory": lambda m: m.driver_allocated_memory(),
    "recommended_max_memory": lambda m: m.recommended_max_memory(),
}


@pytest.mark.parametrize("name", list(MPS_CALLS))
def test_mps_matches_torch(name):
    assert_same(MPS_CALLS[name], ember.mps, torch.mps)


def test_mps_message():
    with pytest.raises(RuntimeError, match=r"Cannot execute deviceSynchronize\(\) without MPS "
                                           "backend"):
        ember.mps.synchronize()


# --- backends ----------------------------------------------------------------------------

BACKEND_VALUES = {
    "cudnn.benchmark": lambda b: b.cudnn.benchmark,
    "cudnn.deterministic": lambda b: b.cudnn.deterministic,
    "cudnn.enabled": lambda b: b.cudnn.enabled,
    "cudnn.allow_tf32": lambda b: b.cudnn.allow_tf32,
    "cudnn.benchmark_limit": lambda b: b.cudnn.benchmark_limit,
    "cudnn.is_available()": lambda b: b.cudnn.is_available(),
    "cudnn.version()": lambda b: b.cudnn.version(),
    "cudnn.is_acceptable": lambda b: b.cudnn.is_acceptable(
        (ember if b is ember.backends else torch).zeros(2)),
    "cuda.is_built()": lambda b: b.cuda.is_built(),
    "cuda.matmul.allow_tf32": lambda b: b.cuda.matmul.allow_tf32,
    "cuda.matmul.fp16_reduction": lambda b: b.cuda.matmul.allow_fp16_reduced_precision_reduction,
    "cuda.matmul.bf16_reduction": lambda b: b.cuda.matmul.allow_bf16_reduced_precision_reduction,
    "cuda.matmul.fp16_split_k":
        lambda b: b.cuda.matmul.allow_fp16_reduced_precision_reduction_split_k,
    "cuda.matmul.allow_fp16_accumulation": lambda b: b.cuda.matmul.allow_fp16_accumulation,
    "cuda.matmul.unknown": lambda b: b.cuda.matmul.not_a_flag,
    "cuda.flash_sdp_enabled": lambda b: b.cuda.flash_sdp_enabled(),
    "cuda.mem_efficient_sdp_enabled": lambda b: b.cuda.mem_efficient_sdp_enabled(),
    "cuda.math_sdp_enabled": lambda b: b.cuda.math_sdp_enabled(),
    "cuda.cudnn_sdp_enabled": lambda b: b.cuda.cudnn_sdp_enabled(),
    "cuda.is_flash_attention_available": lambda b: b.cuda.is_flash_attention_available(),
    "mps.is_available()": lambda b: b.mps.is_available(),
    "mps.is_built()": lambda b: b.mps.is_built(),
    "mkldnn.enabled": lambda b: b.mkldnn.enabled,
    "mkldnn.deterministic": lambda b: b.mkldnn.deterministic,
    "opt_einsum.is_available()": lambda b: b.opt_einsum.is_available(),
    "opt_einsum.enabled": lambda b: b.opt_einsum.enabled,
    "opt_einsum.strategy": lambda b: b.opt_einsum.strategy,
    "opt_einsum.get_opt_einsum()": lambda b: b.opt_einsum.get_opt_einsum() is None,
    "cpu.get_cpu_capability()": lambda b: b.cpu.get_cpu_capability(),
}


@pytest.mark.parametrize("name", list(BACKEND_VALUES))
def test_backend_defaults_match_torch(name):
    assert_same(BACKEND_VALUES[name], ember.backends, torch.backends, message=None)


def test_backends_ember_does_not_have():
    # PyTorch's wheels are built with oneDNN and OpenMP; ember is not (documented difference)
    assert torch.backends.mkldnn.is_available() and not ember.backends.mkldnn.is_available()
    assert torch.backends.openmp.is_available() and not ember.backends.openmp.is_available()


FLAGS = [("cudnn", "benchmark"), ("cudnn", "deterministic"), ("cudnn", "enabled"),
         ("cudnn", "allow_tf32"), ("mkldnn", "enabled"), ("cuda.matmul", "allow_tf32")]


def _resolve(root, path):
    for part in path.split("."):
        root = getattr(root, part)
    return root


@pytest.mark.parametrize("where,flag", FLAGS)
def test_flags_set_and_read_back_and_reject_non_bools(where, flag):
    for root in (ember.backends, torch.backends):
        mod = _resolve(root, where)
        old = getattr(mod, flag)
        try:
            setattr(mod, flag, not old)
            assert getattr(mod, flag) is (not old)
            for bad in (1, "x", None):
                with pytest.raises(RuntimeError, match="expects a bool, but got"):
                    setattr(mod, flag, bad)
            assert getattr(mod, flag) is (not old)
        finally:
            setattr(mod, flag, old)
        assert getattr(mod, flag) is old


def test_matmul_reduction_flags_and_unknown_names():
    for root in (ember.backends, torch.backends):
        mm = root.cuda.matmul
        try:
            mm.allow_fp16_reduced_precision_reduction = (False, False)
            assert mm.allow_fp16_reduced_precision_reduction is False
            assert mm.allow_fp16_reduced_precision_reduction_split_k is False
            for bad in ("x", (), (True, True, True), (True, 1)):
                with pytest.raises(TypeError):
                    mm.allow_fp16_reduced_precision_reduction = bad
        finally:
            mm.allow_fp16_reduced_precision_reduction = True
        with pytest.raises(AttributeError, match="Unknown attribute foo"):
            mm.foo = 1


@pytest.mark.parametrize("kind", ["flash", "mem_efficient", "math", "cudnn"])
def test_sdp_switches(kind):
    for b in (ember.backends.cuda, torch.backends.cuda):
        getattr(b, f"enable_{kind}_sdp")(False)
        assert getattr(b, f"{kind}_sdp_enabled")() is False
        getattr(b, f"enable_{kind}_sdp")(True)
        assert getattr(b, f"{kind}_sdp_enabled")() is True
        with pytest.raises(RuntimeError, match="expects a bool"):
            getattr(b, f"enable_{kind}_sdp")(1)


def test_sdp_kernel_is_deprecated_and_restores():
    for b in (ember.backends.cuda, torch.backends.cuda):
        with pytest.warns(FutureWarning, match="sdp_kernel"):
            with b.sdp_kernel(enable_flash=False):
                assert b.flash_sdp_enabled() is False
        assert b.flash_sdp_enabled() is True


def test_cudnn_flags_context_restores():
    for b in (ember.backends.cudnn, torch.backends.cudnn):
        with b.flags(enabled=False, benchmark=True, deterministic=True):
            assert (b.enabled, b.benchmark, b.deterministic) == (False, True, True)
        assert (b.enabled, b.benchmark, b.deterministic) == (True, False, False)


def test_allow_tf32_is_the_matmul_precision():
    try:
        ember.set_float32_matmul_precision("high")
        torch.set_float32_matmul_precision("high")
        assert ember.backends.cuda.matmul.allow_tf32 is torch.backends.cuda.matmul.allow_tf32
        ember.backends.cuda.matmul.allow_tf32 = False
        assert ember.get_float32_matmul_precision() == "highest"
    finally:
        torch.set_float32_matmul_precision("highest")
        ember.set_float32_matmul_precision("highest")
    assert ember.backends.cuda.matmul.allow_tf32 is torch.backends.cuda.matmul.allow_tf32 is False
