# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# distutils: language = c++
"""ggml core of ggonnx: backends, weights, graph building and compute.

Python lowers an ONNX graph into a flat table of instructions (one row each:
op code, output slot, source slots, expected ggml shape, integer params) and
hands it to ``Plan``; one Cython loop turns the table into ggml tensors and a
cgraph. ``Plan.run`` copies numpy inputs in, computes with the GIL released
and copies outputs out. Every shape was checked by the Python emitter before
it reached here, and each built tensor is compared again with the shape the
emitter expected, so a lowering bug is a Python exception, not an abort().
"""
from libc.stdint cimport int32_t, int64_t, uint8_t, uintptr_t
from libc.string cimport memcpy
from libcpp.vector cimport vector
from libcpp.unordered_map cimport unordered_map
from cython.operator cimport dereference as deref
from cpython.pythread cimport (PyThread_type_lock, PyThread_allocate_lock, PyThread_free_lock,
                               PyThread_acquire_lock, PyThread_release_lock, WAIT_LOCK)
cimport numpy as cnp
import math
import os

import numpy as np

from ggonnx._ggml cimport *
from ggonnx.errors import ComputeError, GraphBuildError, InvalidInputError, PlanRetired

cnp.import_array()

cdef extern from *:
    """
    #include <stdio.h>
    static void ggonnx_log(enum ggml_log_level level, const char * text, void * user_data) {
        (void)user_data;
        if (level == GGML_LOG_LEVEL_ERROR) { fputs(text, stderr); }
    }
    """
    void ggonnx_log(ggml_log_level level, const char * text, void * user_data) nogil

ggml_log_set(ggonnx_log, NULL)

include "_weights.pxi"
include "_profile.pxi"
include "_host_blocks.pxi"
include "_host_kernels.pxi"

# Instruction table layout; ggonnx.emitter builds rows with these columns. C constants for the
# table loops here (a module global costs a dict lookup and a Python add per cell), named for Python.
cdef enum:
    C_OP = 0
    C_OUT = 1
    C_SRC = 2     # 4 source slots, -1 when unused
    C_NE = 6      # expected ggml ne[0..3] of the result
    C_PARAM = 10  # C_N_PARAMS integer parameters
    C_N_PARAMS = 17
COL_OP, COL_OUT, COL_SRC, COL_NE, COL_PARAM, N_PARAMS = C_OP, C_OUT, C_SRC, C_NE, C_PARAM, C_N_PARAMS
P_INTO, P_COFF, P_OC = GGONNX_P_INTO, GGONNX_P_COFF, GGONNX_P_OC  # channel slices (kernels.h)
N_COLS = COL_PARAM + N_PARAMS

cpdef enum Op:
    INPUT = 1         # param 0: 0 float32, 1 int32 (row indices)
    WEIGHT = 2        # param 0: index in the engine's weights, param 1: its ggml type
    CONST = 3
    ADD = 10
    SUB = 11
    MUL = 12
    DIV = 13
    REPEAT = 14
    RELU = 20
    TANH = 22
    SCALE_BIAS = 23
    UNARY = 24        # param 0: a Unary kind
    LEAKY_RELU = 25   # fparam 0: slope
    CLAMP = 26        # fparams: min, max
    SOFT_MAX = 30
    MEAN = 31
    NORM = 32         # (x - mean) / sqrt(var + eps) along ne0; fparam 0: eps
    RMS_NORM = 34     # x / sqrt(mean(x^2) + eps) along ne0; fparam 0: eps
    SUM_ROWS = 33
    MUL_MAT = 40
    GET_ROWS = 42     # rows of src0 picked by the int32 vector src1
    CONT = 50
    RESHAPE = 51
    PERMUTE = 52
    VIEW = 54
    IM2COL = 60
    CONV_DW = 61
    POOL_MAX = 62
    POOL_AVG = 63
    # channels-last (NHWC: ggml ne [C, W, H, N]) kernels; params as in kernels.h
    IM2COL_NHWC = 65       # src0 [C, W, H, N] -> [KH*KW*C, OW, OH, N]
    POOL_NHWC = 66
    GLOBAL_POOL_NHWC = 67
    GEMM_PACKED = 69       # src0 X [K, P], src1 packed W, src2 bias [OC] or -1 -> [OC, P]
    CONV_PACKED = 70       # src0 X [C, W, H, N], src1 packed W, src2 bias -> [OC, OW, OH, N]
    RESIZE = 71            # src0 data, src1 tap table; params: layout, taps
    COL2IM_NHWC = 72       # src0 cols [KH*KW*OC, W, H, N], src1 bias or -1 -> [OC, OW, OH, N]
    PAD_MODE = 73          # src0 data; params: begin[4] (ggml order), mode, value bits
    ACTIVATION = 74        # src0 data, src2 bias panels or -1, src3 residual or -1; params: act (ACT_*), lo, hi bits
    CONV_NARROW = 75       # src0 X [C, W, H, N], src1 W [OC4, K], src2 bias [OC4] -> [OC, OW, OH, N]
    TRANSPOSE2D = 76       # src0 [n0, n1, n2, 1] -> [n1, n0, n2, 1]
    DEPTHWISE = 77         # src0 X [C, W, H, N], src1 W [KH*KW, C], src2 bias [C] -> [C, OW, OH, N]
    CONCAT_C = 78          # src0..3 [Ci, W, H, N] -> [sum Ci, W, H, N] (channels-last concat)
    PACK_PANELS = 79       # src0 [N, K, B] -> [panels * K * GEMM_PANEL, B] (packed GEMM weight layout)
    PIXEL_RUNS = 80        # src0 [C, W, H, N] -> view [KW*C, W-KW+1, H, N]: pixel x holds pixels x..x+KW-1
    GEMM_AMX_BF16 = 81     # src0 bf16 AMX tiles of W [N, K], src1 X [K, M] -> [N, M]
    ARG_EXTREME = 82       # src0 [K, R...] -> [1, R...] float index; params: is_min, last, nan_wins
    LOOKUP = 83            # src0 table [K], src1 float-held indices -> table[indices], src1's shape
    ONE_HOT = 84           # src0 float-held integers [M], src1 categories [K] -> [K, M], 1 where equal
    TAKE_COLUMNS = 85      # src0 [C, R...], src1 float-held column indices [K] in [0, C) -> [K, R...]
    OUT_PROD = 86          # ggml_out_prod: src0 [N, K, A2, A3], src1 [M, K, B2, B3] -> [N, M, B2, B3]
    NORM_AFFINE = 87       # src0 x [C, R...], src1 scale [C], src2 bias [C] or -1 -> LayerNorm of x over C; params: eps bits

cpdef enum Unary:
    EXP = 0
    LOG = 1
    ABS = 2
    NEG = 3
    SQRT = 4
    SQR = 5
    SIN = 6
    COS = 7
    SILU = 9
    FLOOR = 11
    CEIL = 12
    SGN = 13
    SOFTPLUS = 14
    ELU = 15
    SIGMOID = 16   # 1 / (1 + expf(-x)) exactly (ACT_SIGMOID is a faster approximation)
    STEP = 17      # 1 where x > 0, else 0 (NaN: 0)


cdef ggml_tensor * _unary(ggml_context * ctx, int kind, ggml_tensor * a) noexcept nogil:
    if kind == EXP: return ggml_exp(ctx, a)
    if kind == LOG: return ggml_log(ctx, a)
    if kind == ABS: return ggml_abs(ctx, a)
    if kind == NEG: return ggml_neg(ctx, a)
    if kind == SQRT: return ggml_sqrt(ctx, a)
    if kind == SQR: return ggml_sqr(ctx, a)
    if kind == SIN: return ggml_sin(ctx, a)
    if kind == COS: return ggml_cos(ctx, a)
    if kind == SILU: return ggml_silu(ctx, a)
    if kind == FLOOR: return ggml_floor(ctx, a)
    if kind == CEIL: return ggml_ceil(ctx, a)
    if kind == SGN: return ggml_sgn(ctx, a)
    if kind == SOFTPLUS: return ggml_softplus(ctx, a)
    if kind == ELU: return ggml_elu(ctx, a)
    if kind == SIGMOID: return ggml_sigmoid(ctx, a)
    if kind == STEP: return ggml_step(ctx, a)
    return NULL


MAX_THREADS = 512  # GGML_MAX_N_THREADS: ggml asserts above it

# MUL_MAT placement hints (param 0)
PLACE_AUTO = 0
PLACE_CPU = 1
PLACE_BLAS = 2


GEMM_PANEL = GGONNX_GEMM_PANEL  # output channels per panel of a packed GEMM weight
CONV_MAX_C = GGONNX_CONV_MAX_C  # input channels an implicit-GEMM conv takes at most
NARROW_MAX_OC = GGONNX_NARROW_MAX_OC  # output channels a narrow conv takes at most
# activations of a packed GEMM's epilogue and of Op.ACTIVATION (kernels.h)
ACT_NONE, ACT_CLAMP, ACT_HARDSWISH, ACT_HARDSIGMOID, ACT_SIGMOID, ACT_SILU, ACT_GELU_TANH, ACT_GELU_ERF = (
    GGONNX_ACT_NONE, GGONNX_ACT_CLAMP, GGONNX_ACT_HARDSWISH, GGONNX_ACT_HARDSIGMOID, GGONNX_ACT_SIGMOID,
    GGONNX_ACT_SILU, GGONNX_ACT_GELU_TANH, GGONNX_ACT_GELU_ERF)
ACT_ROUND = GGONNX_ACT_ROUND


def ggml_version_string():
    return ggml_version().decode()


def backend_devices():
    """(name, description) of every ggml backend device compiled in."""
    out = []
    for i in range(ggml_backend_dev_count()):
        dev = ggml_backend_dev_get(i)
        out.append((ggml_backend_dev_name(dev).decode(), ggml_backend_dev_description(dev).decode()))
    return out


def cpu_features():
    feats = {
        "AVX2": ggml_cpu_has_avx2(), "AVX512": ggml_cpu_has_avx512(),
        "AVX512_VNNI": ggml_cpu_has_avx512_vnni(), "AVX512_BF16": ggml_cpu_has_avx512_bf16(),
        "F16C": ggml_cpu_has_f16c(), "FMA": ggml_cpu_has_fma(), "NEON": ggml_cpu_has_neon(),
        "LLAMAFILE": ggml_cpu_has_llamafile(),
        "AMX_INT8": ggml_cpu_has_amx_int8(),
    }
    return [k for k, v in feats.items() if v]


def amx_bf16() -> bool:
    """Whether bf16 weights run on our AMX tile kernel (kernels_amx.c): this build targets AMX,
    the CPU has AMX-BF16, the OS grants the tile state, and GGONNX_AMX is not "0"."""
    return os.environ.get("GGONNX_AMX", "1") != "0" and ggonnx_amx_bf16_init() == 1


def amx_weights() -> bool:
    """Whether weights of the types ggml's AMX int8 kernels take go to the AMX buffer: this build
    has the kernels, the CPU and the OS allow AMX, and GGONNX_AMX is not "0"."""
    return _amx_buft() != NULL


include "_engine.pxi"


include "_plan_build.pxi"


include "_custom_ops.pxi"


cdef class Plan:
    """One compiled ggml graph for one input-shape signature."""
    cdef Engine engine
    cdef ggml_context * ctx
    cdef ggml_context * const_ctx
    cdef ggml_backend_buffer_t const_buf
    cdef ggml_cgraph * graph
    cdef ggml_backend_sched_t sched
    cdef ggml_backend_t cpu     # the engine's CPU backend this plan computes on (pooled or single)
    cdef size_t graph_size      # the sched's capacity in nodes
    cdef size_t ctx_size        # bytes of ctx
    cdef vector[ggml_tensor *] inputs
    cdef vector[ggml_tensor *] outputs
    cdef vector[size_t] input_bytes
    cdef vector[int] input_int32
    # zero-copy runs: an input read in place from its array (when no op writes into it: only
    # pure views of it in the graph), an output computed straight into its array; each tensor's
    # own address, restored after a run, and per input / output the views of it to re-point
    cdef vector[int] input_direct
    cdef vector[int] output_direct
    cdef vector[void *] input_home
    cdef vector[void *] output_home
    cdef vector[vector[ggml_tensor *]] input_views
    cdef vector[vector[ggml_tensor *]] output_views
    cdef readonly int n_threads
    cdef readonly tuple input_shapes
    cdef readonly tuple output_shapes
    cdef readonly list matmul_backends
    cdef readonly int n_nodes
    cdef readonly int n_splits
    cdef readonly size_t compute_bytes
    cdef object instructions  # custom ops read their parameters from its rows
    cdef ggonnx_profile * profile  # non-NULL while profiling (set_profiling)
    # the allocation the scheduler holds was planned for a larger graph of the same structure
    # (see _reserve_headroom): plans of reserved_key up to length reserved_upto fit it
    cdef readonly object reserved_key
    cdef readonly long long reserved_upto

    def __cinit__(self, Engine engine, cnp.ndarray instructions, cnp.ndarray fparams, list consts,
                  list input_slots, tuple input_shapes, list output_slots, tuple output_shapes,
                  int n_threads, list row_names, Plan reuse=None, tuple headroom=None):
        self.engine = engine
        self.n_threads = max(1, min(n_threads, engine.n_threads))
        self.cpu = engine.cpu_single if self.n_threads == 1 else engine.cpu
        if reuse is not None and reuse.engine is engine:
            self._take_resources(reuse)
        self.input_shapes = input_shapes
        self.output_shapes = output_shapes
        self.matmul_backends = []
        self.instructions = instructions
        self._build(instructions, fparams, consts, input_slots, output_slots, row_names, headroom)

    cdef _take_resources(self, Plan old):
        """Take ``old``'s graph context and scheduler (one on another CPU backend is freed), so a
        plan written for each new cache length while decoding allocates neither again
        (ggml_backend_sched_new's tables and freeing them were most of writing such a plan).
        ``old`` is retired: a run of it raises PlanRetired."""
        with nogil:  # not while another thread computes on it
            PyThread_acquire_lock(self.engine.lock, WAIT_LOCK)
            if old.cpu == self.cpu:
                self.sched = old.sched
            elif old.sched != NULL:
                ggml_backend_sched_free(old.sched)
            self.graph_size = old.graph_size
            self.ctx = old.ctx
            self.ctx_size = old.ctx_size
            old.sched = NULL
            old.ctx = NULL
            old.graph = NULL
            PyThread_release_lock(self.engine.lock)
        if self.sched != NULL:  # the scheduler's allocation came along (see _reserve_headroom)
            self.reserved_key, self.reserved_upto = old.reserved_key, old.reserved_upto
        old.reserved_key = None
        if old.profile != NULL:
            ggonnx_profile_free(old.profile)
            old.profile = NULL
        if self.sched != NULL:
            ggml_backend_sched_set_eval_callback(self.sched, NULL, NULL)

    @property
    def direct_io(self) -> tuple:
        """(per input, per output): whether a run binds it to its array instead of copying."""
        return ([bool(self.input_direct[k]) for k in range(self.input_direct.size())],
                [bool(self.output_direct[k]) for k in range(self.output_direct.size())])

    @property
    def retired(self) -> bool:
        """Whether a later plan took this one's resources (see _take_resources)."""
        return self.sched == NULL

    def __dealloc__(self):
        if self.profile != NULL:
            ggonnx_profile_free(self.profile)
        if self.sched != NULL:
            ggml_backend_sched_free(self.sched)
        if self.const_buf != NULL:
            ggml_backend_buffer_free(self.const_buf)
        if self.const_ctx != NULL:
            ggml_free(self.const_ctx)
        if self.ctx != NULL:
            ggml_free(self.ctx)

    cdef _build(self, cnp.ndarray instructions, cnp.ndarray fparams, list consts,
                list input_slots, list output_slots, list row_names, tuple headroom):
        cdef int64_t[:, ::1] ins = instructions
        cdef Py_ssize_t n = ins.shape[0]
        cdef Py_ssize_t i, n_slots = 0
        cdef int k
        cdef vector[ggml_tensor *] slots
        cdef vector[ggml_tensor *] const_tensors
        cdef vector[ggml_tensor *] mm_nodes
        cdef vector[int] mm_hints
        cdef ggml_init_params ip
        cdef size_t graph_size
        cdef ggml_backend_t backends[2]
        cdef ggml_backend_buffer_type_t bufts[2]
        cdef int n_backends = 0
        cdef ggml_backend_t bk
        if ins.shape[1] != N_COLS:
            raise GraphBuildError(f"instruction table must have {N_COLS} columns")
        for i in range(n):
            if ins[i, C_OUT] + 1 > n_slots:
                n_slots = ins[i, C_OUT] + 1
        if consts:  # freed by __dealloc__ even when _upload fails half way
            _upload(self.engine.cpu, consts, &self.const_ctx, &self.const_buf, const_tensors)

        graph_size = max(2048, <size_t> (4 * n + 64))
        if self.sched != NULL and self.graph_size < graph_size:
            ggml_backend_sched_free(self.sched)
            self.sched = NULL
        if self.sched != NULL:
            graph_size = self.graph_size  # the graph may not outgrow the scheduler taken over
        ip.mem_size = ggml_tensor_overhead() * (2 * n + len(output_slots) + 16) + ggml_graph_overhead_custom(graph_size, False)
        ip.mem_buffer = NULL
        ip.no_alloc = True
        if self.ctx != NULL and self.ctx_size >= ip.mem_size:
            ggml_reset(self.ctx)
        else:
            if self.ctx != NULL:
                ggml_free(self.ctx)
            self.ctx = ggml_init(ip)
            self.ctx_size = ip.mem_size
        if self.ctx == NULL:
            raise MemoryError("ggml_init failed for the graph")
        if self.engine.blas != NULL:
            backends[n_backends] = self.engine.blas
            bufts[n_backends] = ggonnx_scratch_buft(self.engine.blas_scratch)
            n_backends += 1
        backends[n_backends] = self.cpu  # the CPU backend must come last
        bufts[n_backends] = ggonnx_scratch_buft(self.engine.cpu_scratch)
        n_backends += 1
        if self.sched != NULL:
            ggml_backend_sched_reset(self.sched)
        else:
            self.sched = ggml_backend_sched_new(backends, bufts, n_backends, graph_size, False, False)
            self.graph_size = graph_size
            self.reserved_key = None
        if self.sched == NULL:
            raise MemoryError("ggml_backend_sched_new failed")

        if not self._reserve_headroom(headroom, fparams, const_tensors, n_slots, output_slots, row_names, graph_size):
            self.reserved_key = None
        slots.resize(n_slots, NULL)
        self.graph = self._build_graph(instructions, fparams, const_tensors, slots, output_slots, row_names, graph_size,
                                       mm_nodes, mm_hints, &self.outputs)
        for s in input_slots:
            self.inputs.push_back(slots[s])
            self.input_bytes.push_back(ggml_nbytes(slots[s]))
            self.input_int32.push_back(slots[s].type == GGML_TYPE_I32)
        self.n_nodes = ggml_graph_n_nodes(self.graph)
        self._place_matmuls(mm_nodes, mm_hints)
        if not ggml_backend_sched_alloc_graph(self.sched, self.graph):
            raise MemoryError("ggml could not allocate the compute graph")
        if self.reserved_key is not None and not _in_place_only(self.graph):
            # the allocation planned at the larger length overlaps a node with a source it may
            # not write over at this one: plan this graph's own (and forget the headroom)
            self.reserved_key = None
            ggml_backend_sched_reset(self.sched)
            self._place_matmuls(mm_nodes, mm_hints)
            if not ggml_backend_sched_reserve(self.sched, self.graph):
                raise MemoryError("ggml could not allocate the compute graph")
            self._place_matmuls(mm_nodes, mm_hints)
            if not ggml_backend_sched_alloc_graph(self.sched, self.graph):
                raise MemoryError("ggml could not allocate the compute graph")
        self.n_splits = ggml_backend_sched_get_n_splits(self.sched)
        self.compute_bytes = ggml_backend_sched_get_buffer_size(self.sched, self.cpu)
        if self.engine.blas != NULL:
            self.compute_bytes += ggml_backend_sched_get_buffer_size(self.sched, self.engine.blas)
        for k in range(<int> mm_nodes.size()):
            bk = ggml_backend_sched_get_tensor_backend(self.sched, mm_nodes[k])
            self.matmul_backends.append(ggml_backend_name(bk).decode() if bk != NULL else "?")
        for k in range(<int> self.inputs.size()):
            if self.inputs[k].data == NULL:
                self.input_bytes[k] = 0  # input not used by any output: nothing to copy
        _plan_direct_io(self)

    cdef bint _reserve_headroom(self, tuple headroom, cnp.ndarray fparams, vector[ggml_tensor *] & const_tensors,
                                Py_ssize_t n_slots, list output_slots, list row_names, size_t graph_size) except *:
        """Let the scheduler's allocation cover the lengths ahead. ``headroom`` is (key, t, upto,
        table at upto or None) from a plan family: every plan of ``key`` has one graph structure,
        and its tensors grow with t. Where the allocation taken over was planned for this key up to
        at least t, nothing is done (ggml's allocator reuses a plan whose tensors all fit); else
        the graph of the table at ``upto`` is built and reserved, then dropped, so that the plans
        of the next lengths allocate without planning again. False: no headroom holds."""
        cdef vector[ggml_tensor *] slots
        cdef vector[ggml_tensor *] mm_nodes
        cdef vector[int] mm_hints
        cdef ggml_cgraph * g
        if headroom is None:
            return False
        key, t, upto, table = headroom
        if table is None:
            return self.reserved_key is key and t <= self.reserved_upto
        slots.resize(n_slots, NULL)
        try:
            g = self._build_graph(table, fparams, const_tensors, slots, output_slots, row_names, graph_size,
                                  mm_nodes, mm_hints, NULL)
        except GraphBuildError:  # that length cannot be built: no headroom, this one is planned alone
            ggml_reset(self.ctx)
            return False
        self._place_matmuls(mm_nodes, mm_hints)
        ok = ggml_backend_sched_reserve(self.sched, g)  # resets the scheduler after planning
        ggml_reset(self.ctx)
        if ok:
            self.reserved_key, self.reserved_upto = key, upto
        return ok

    cdef _place_matmuls(self, vector[ggml_tensor *] & mm_nodes, vector[int] & mm_hints):
        cdef ggml_backend_t bk
        for k in range(<int> mm_nodes.size()):
            bk = self.cpu
            if mm_hints[k] == PLACE_BLAS and self.engine.blas != NULL and ggml_backend_supports_op(self.engine.blas, mm_nodes[k]):
                bk = self.engine.blas
            ggml_backend_sched_set_tensor_backend(self.sched, mm_nodes[k], bk)

    cdef ggml_cgraph * _build_graph(self, cnp.ndarray instructions, cnp.ndarray fparams,
                                    vector[ggml_tensor *] & const_tensors, vector[ggml_tensor *] & slots,
                                    list output_slots, list row_names, size_t graph_size,
                                    vector[ggml_tensor *] & mm_nodes, vector[int] & mm_hints,
                                    vector[ggml_tensor *] * outputs) except NULL:
        """The rows' tensors in ``slots`` and the graph computing ``output_slots``, each made
        contiguous (into ``outputs`` where given), in this plan's context."""
        cdef int64_t[:, ::1] ins = instructions
        cdef double[:, ::1] fp = fparams
        cdef Py_ssize_t n = ins.shape[0]
        cdef Py_ssize_t i
        cdef int op, k
        cdef bint leaves
        cdef ggml_tensor * srcs[4]
        cdef ggml_tensor * r
        cdef ggml_cgraph * g
        # two passes: leaves (inputs, weights, constants) first, so that a fused row may read a
        # weight emitted after it (a bias folded into a GEMM by the Add that follows it)
        for leaves in (True, False):
            for i in range(n):
                op = ins[i, C_OP]
                if (op == INPUT or op == WEIGHT or op == CONST) != leaves:
                    continue
                for k in range(4):
                    srcs[k] = NULL
                    if ins[i, C_SRC + k] >= 0:
                        srcs[k] = slots[ins[i, C_SRC + k]]
                        if srcs[k] == NULL:
                            raise GraphBuildError(f"row {i} ({row_names[i]}): source slot {ins[i, C_SRC + k]} "
                                                  f"is undefined")
                        if srcs[k].extra != NULL and (op != MUL_MAT or k != 0):  # no backend could run it
                            raise GraphBuildError(f"row {i} ({row_names[i]}): op code {op} reads a repacked weight")
                r = self._build_one(op, srcs, ins, fp, i, const_tensors)
                if r == NULL:
                    raise GraphBuildError(f"row {i} ({row_names[i]}): op code {op} could not be built")
                if r.name[0] == 0:  # the row a profiled node came from
                    _name_row(r, i)
                for k in range(4):
                    if r.ne[k] != ins[i, C_NE + k]:
                        raise GraphBuildError(
                            f"row {i} ({row_names[i]}): ggml built shape "
                            f"{[r.ne[0], r.ne[1], r.ne[2], r.ne[3]]} but the emitter expected "
                            f"{[ins[i, C_NE], ins[i, C_NE + 1], ins[i, C_NE + 2], ins[i, C_NE + 3]]}")
                if op == MUL_MAT:
                    mm_nodes.push_back(r)
                    mm_hints.push_back(ins[i, C_PARAM])
                slots[ins[i, C_OUT]] = r
        g = ggml_new_graph_custom(self.ctx, graph_size, False)
        for s in output_slots:
            r = slots[s]
            if _reshaped_node(r):
                r = r.view_src  # its memory holds the output's values in order: no copy to make
            elif _is_view(r) or not ggml_is_contiguous(r):
                r = ggml_cont(self.ctx, r)  # outputs are read back as one contiguous block
            ggml_set_output(r)
            ggml_build_forward_expand(g, r)
            if outputs != NULL:
                outputs.push_back(r)
        return g

    cdef ggml_tensor * _build_one(self, int op, ggml_tensor ** srcs, int64_t[:, ::1] ins,
                                  double[:, ::1] fp, Py_ssize_t i, vector[ggml_tensor *] & const_tensors) except? NULL:
        cdef ggml_context * ctx = self.ctx
        cdef ggml_tensor * a = srcs[0]
        cdef ggml_tensor * b = srcs[1]
        cdef int64_t * p = &ins[i, C_PARAM]
        cdef int64_t * ne = &ins[i, C_NE]
        cdef ggml_tensor * t
        if op == INPUT:
            t = ggml_new_tensor_4d(ctx, GGML_TYPE_I32 if p[0] == 1 else GGML_TYPE_F32, ne[0], ne[1], ne[2], ne[3])
            ggml_set_input(t)
            return t
        if op == WEIGHT:
            if p[0] < 0 or <size_t> p[0] >= self.engine.weights.size():
                raise GraphBuildError(f"row {i}: weight index {p[0]} out of range")
            t = self.engine.weights[p[0]]
            if <int> t.type != p[1]:
                raise GraphBuildError(f"row {i}: weight {p[0]} is {type_name(t.type)}, the emitter expected "
                                      f"{type_name(p[1])}")
            return t
        if op == CONST:
            if p[0] < 0 or <size_t> p[0] >= const_tensors.size():
                raise GraphBuildError(f"row {i}: constant index {p[0]} out of range")
            return const_tensors[p[0]]
        if op == ADD:
            return ggml_add(ctx, a, b)
        if op == SUB:
            return ggml_sub(ctx, a, b)
        if op == MUL:
            return ggml_mul(ctx, a, b)
        if op == DIV:
            return ggml_div(ctx, a, b)
        if op == REPEAT:
            return ggml_repeat_4d(ctx, a, ne[0], ne[1], ne[2], ne[3])
        if op == RELU:
            return ggml_relu(ctx, a)
        if op == TANH:
            return ggml_tanh(ctx, a)
        if op == UNARY:
            return _unary(ctx, <int> p[0], a)
        if op == LEAKY_RELU:
            return ggml_leaky_relu(ctx, a, <float> fp[i, 0], False)
        if op == CLAMP:
            return ggml_clamp(ctx, a, <float> fp[i, 0], <float> fp[i, 1])
        if op == NORM:
            return ggml_norm(ctx, a, <float> fp[i, 0])
        if op == RMS_NORM:
            return ggml_rms_norm(ctx, a, <float> fp[i, 0])
        if op == SUM_ROWS:
            return ggml_sum_rows(ctx, a)
        if op == SCALE_BIAS:
            return ggml_scale_bias(ctx, a, <float> fp[i, 0], <float> fp[i, 1])
        if op == SOFT_MAX:  # ours: vectorized exp, one row in L1 at a time; src1 an added mask
            if not ggml_is_contiguous(a):
                a = ggml_cont(ctx, a)
            if b != NULL:
                if b.type != GGML_TYPE_F32 or b.ne[0] != a.ne[0] or not ggml_can_repeat(b, a):
                    raise GraphBuildError(f"row {i}: softmax mask {[b.ne[k] for k in range(4)]} does not repeat "
                                          f"to {[a.ne[k] for k in range(4)]}")
                srcs[0], srcs[1] = a, b if ggml_is_contiguous(b) else ggml_cont(ctx, b)
                return ggml_custom_4d(ctx, GGML_TYPE_F32, ne[0], ne[1], ne[2], ne[3], srcs, 2, ggonnx_softmax,
                                      GGML_N_TASKS_MAX, p)
            return ggml_custom_4d(ctx, GGML_TYPE_F32, ne[0], ne[1], ne[2], ne[3], &a, 1, ggonnx_softmax,
                                  GGML_N_TASKS_MAX, p)
        if op == MEAN:
            return ggml_mean(ctx, a)
        if op == MUL_MAT:
            if a.extra != NULL and not ggml_is_contiguous(b):
                # a weight in an extra (AMX / repack) layout: those kernels take only a contiguous
                # b, and ggml has no other kernel that can read the weight
                b = ggml_cont(ctx, b)
            return ggml_mul_mat(ctx, a, b)
        if op == OUT_PROD:  # ggml asserts these; the emitter checked them already
            if (a.type != GGML_TYPE_F32 or b.type != GGML_TYPE_F32 or a.ne[1] != b.ne[1] or b.ne[2] % a.ne[2]
                    or b.ne[3] % a.ne[3] or a.nb[0] != sizeof(float) or ggml_is_transposed(a)):
                raise GraphBuildError(f"row {i}: OUT_PROD of {[a.ne[k] for k in range(4)]} and "
                                      f"{[b.ne[k] for k in range(4)]}")
            return ggml_out_prod(ctx, a, b)
        if op == GET_ROWS:
            if b.type != GGML_TYPE_I32:
                raise GraphBuildError(f"row {i}: GET_ROWS needs int32 row indices")
            return ggml_get_rows(ctx, a, b)
        if op == CONT:
            return ggml_cont(ctx, a)
        if op == RESHAPE:
            if not ggml_is_contiguous(a):
                a = ggml_cont(ctx, a)
            return ggml_reshape_4d(ctx, a, ne[0], ne[1], ne[2], ne[3])
        if op == PERMUTE:
            return ggml_permute(ctx, a, <int> p[0], <int> p[1], <int> p[2], <int> p[3])
        if op == VIEW:
            return ggml_view_4d(ctx, a, ne[0], ne[1], ne[2], ne[3], <size_t> p[0], <size_t> p[1],
                                <size_t> p[2], <size_t> p[3])
        if op == PIXEL_RUNS:
            # rows that overlap: made as a view of C channels, then widened (ggml's view
            # constructor checks the bytes a contiguous tensor of the wide shape would take)
            if not ggml_is_contiguous(a):
                a = ggml_cont(ctx, a)
            t = ggml_view_4d(ctx, a, a.ne[0], ne[1], ne[2], ne[3], a.nb[1], a.nb[2], a.nb[3], 0)
            t.ne[0] = ne[0]
            return t
        if op == IM2COL:
            return ggml_im2col(ctx, a, b, <int> p[0], <int> p[1], <int> p[2], <int> p[3], <int> p[4],
                               <int> p[5], True, GGML_TYPE_F32)
        if op == CONV_DW:
            return ggml_conv_2d_dw_direct(ctx, a, b, <int> p[0], <int> p[1], <int> p[2], <int> p[3],
                                          <int> p[4], <int> p[5])
        if op == POOL_MAX or op == POOL_AVG:
            return ggml_pool_2d(ctx, a, GGML_OP_POOL_MAX if op == POOL_MAX else GGML_OP_POOL_AVG,
                                <int> p[0], <int> p[1], <int> p[2], <int> p[3], <float> p[4], <float> p[5])
        return _custom_op_row(ctx, op, srcs, ne, p, i)

    def set_profiling(self, bint on):
        """Log each node's end time from now on (every node then runs as its own graph), or stop."""
        if on and self.profile == NULL:
            self.profile = ggonnx_profile_new()
        if self.sched == NULL:
            raise PlanRetired("this plan's resources went to a later plan")
        elif not on and self.profile != NULL:
            ggml_backend_sched_set_eval_callback(self.sched, NULL, NULL)
            ggonnx_profile_free(self.profile)
            self.profile = NULL
        if on:
            ggml_backend_sched_set_eval_callback(self.sched, ggonnx_profile_node, <void *> self.profile)

    def profile_records(self):
        """(start ns, compute start ns, end ns, [(row, ggml op, end ns), ...]) of the last run while
        profiling (CLOCK_MONOTONIC, as time.monotonic_ns), or None."""
        if self.profile == NULL:
            return None
        return _profile_records(self.profile)

    def run(self, list feeds):
        """Compute the graph. ``feeds`` are float32 arrays in input order with the plan's shapes."""
        cdef Py_ssize_t n_in = self.inputs.size()
        cdef Py_ssize_t n_out = self.outputs.size()
        cdef Py_ssize_t k
        cdef cnp.ndarray arr
        cdef vector[void *] in_ptrs
        cdef vector[void *] out_ptrs
        cdef ggml_status status = GGML_STATUS_SUCCESS
        cdef bint retired = False
        cdef Engine eng = self.engine
        if len(feeds) != n_in:
            raise InvalidInputError(f"expected {n_in} inputs, got {len(feeds)}")
        cdef vector[int] bind_in
        cdef int bind
        cdef size_t out_total = 0
        keep = []
        for k in range(n_in):
            feed = feeds[k]
            arr = feed
            if cnp.PyArray_TYPE(arr) != (cnp.NPY_INT32 if self.input_int32[k] else cnp.NPY_FLOAT32):
                raise InvalidInputError(f"input {k}: expected {'int32' if self.input_int32[k] else 'float32'}, "
                                        f"got {feed.dtype}")
            if feed.shape != self.input_shapes[k]:
                raise InvalidInputError(f"input {k}: expected shape {self.input_shapes[k]}, got {feed.shape}")
            if not cnp.PyArray_IS_C_CONTIGUOUS(arr):
                arr = np.ascontiguousarray(arr)
            keep.append(arr)
            in_ptrs.push_back(cnp.PyArray_DATA(arr))
            bind = 1 if self.input_direct[k] else 0
            if (<uintptr_t> cnp.PyArray_DATA(arr)) % 4 != 0:
                bind = 0  # a float read in place must be aligned
            bind_in.push_back(bind)
        outs = []
        out_ptrs.resize(n_out)
        for k in range(n_out):
            nbytes = 4 * math.prod(self.output_shapes[k])  # not the tensor: a retired plan's are gone
            out_total += nbytes
            outs.append(_output_array(self.output_shapes[k], nbytes, &out_ptrs[k]))
        _note_run_output_bytes(out_total)
        with nogil:
            PyThread_acquire_lock(eng.lock, WAIT_LOCK)
            retired = self.sched == NULL
            if not retired:
                if self.profile != NULL:
                    ggonnx_profile_clear(self.profile)
                    self.profile.marks[0] = ggonnx_now_ns()
                if self.n_threads > 1:
                    ggml_backend_cpu_set_n_threads(eng.cpu, self.n_threads)
                for k in range(n_in):
                    if bind_in[k]:
                        _bind(self.inputs[k], self.input_views[k], in_ptrs[k])
                    elif self.input_bytes[k]:
                        ggml_backend_tensor_set(self.inputs[k], in_ptrs[k], 0, self.input_bytes[k])
                _bind_outputs(self, out_ptrs)
                if self.profile != NULL:
                    self.profile.marks[1] = ggonnx_now_ns()
                status = ggml_backend_sched_graph_compute(self.sched, self.graph)
                if status == GGML_STATUS_SUCCESS:  # copied while bound: an output may be another one, or view it
                    for k in range(n_out):
                        if not self.output_direct[k]:
                            ggml_backend_tensor_get(self.outputs[k], out_ptrs[k], 0, ggml_nbytes(self.outputs[k]))
                _bind_outputs(self, self.output_home)
                for k in range(n_in):
                    if bind_in[k]:
                        _bind(self.inputs[k], self.input_views[k], self.input_home[k])
                if self.profile != NULL:
                    self.profile.marks[2] = ggonnx_now_ns()
            PyThread_release_lock(eng.lock)
        if retired:
            raise PlanRetired("this plan's resources went to a later plan")
        if status != GGML_STATUS_SUCCESS:
            raise ComputeError(f"ggml graph compute failed with status {<int> status}")
        return outs


include "_plan_io.pxi"
