"""``torch._inductor.config``: PyTorch's knobs with PyTorch 2.13's defaults.  ember's lowering
reads none of them (it has no kernels to tune, no cache on disk, no CUDA graphs); programs set
them before ``torch.compile``, so they are plain attributes, and names not listed here can be
set too."""
from .._dynamo.config import patcher as _patcher

coordinate_descent_tuning = False
coordinate_descent_check_all_directions = False
fx_graph_cache = True
fx_graph_remote_cache = None
autotune_local_cache = True
force_disable_caches = False
freezing = False
freezing_discard_parameters = False
max_autotune = False
max_autotune_gemm = False
max_autotune_pointwise = False
max_autotune_gemm_backends = "ATEN,TRITON,CPP"
epilogue_fusion = True
shape_padding = True
cpp_wrapper = False
debug = False
conv_1x1_as_mm = False
split_reductions = True
benchmark_kernel = False
aggressive_fusion = False
layout_optimization = True
keep_output_stride = True
fallback_random = False
implicit_fallbacks = True
compile_threads = 2
autotune_in_subproc = False
search_autotune_cache = False
force_fuse_int_mm_with_mul = False
use_mixed_mm = True
permute_fusion = False
group_fusion = False
pattern_matcher = True
reorder_for_locality = True
size_asserts = True
nan_asserts = False
unroll_reductions_threshold = 8
comment_origin = False
generate_intermediate_hooks = False
emulate_precision_casts = False
joint_graph_constant_folding = True
online_softmax = True
max_fusion_size = 64
disable_progress = True
verbose_progress = False
profiler_mark_wrapper_call = False
allow_buffer_reuse = True
inplace_buffers = True
dce = False
cpu_backend = "cpp"
cuda_backend = "triton"
combo_kernels = False
loop_ordering_after_fusion = True
split_cat_fx_passes = True
pre_grad_fusion_options: dict = {}
post_grad_fusion_options: dict = {}


class triton:
    """Knobs of the GPU code generator."""
    unique_kernel_names = True
    cudagraph_trees = True
    cudagraphs = False
    cudagraph_skip_dynamic_graphs = False
    cudagraph_support_input_mutation = True
    autotune_pointwise = True
    max_tiles = None
    descriptive_names = "original_aten"
    persistent_reductions = True
    divisible_by_16 = True
    store_cubin = False
    use_block_ptr = False
    multi_kernel = 0
    spill_threshold = 16
    codegen_upcast_to_fp32 = True


class cpp:
    """Knobs of the CPU code generator."""
    threads = -1
    simdlen = None
    vec_isa_ok = None
    dynamic_threads = False
    descriptive_names = "original_aten"
    enable_kernel_profile = False
    weight_prepack = True
    min_chunk_size = 512
    enable_floating_point_contract_flag = "off"


class trace:
    """Knobs of the compile trace written to disk."""
    enabled = False
    fx_graph = True
    ir_post_fusion = True
    graph_diagram = False


class aot_inductor:
    """Knobs of ahead-of-time packaging."""
    output_path = ""
    debug_compile = False
    package = False
    use_runtime_constant_folding = False


patch = _patcher(__import__("sys").modules[__name__])
