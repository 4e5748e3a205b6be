# Weight types and the upload of session weights; included by _core.pyx.
from libc.string cimport strcmp
import threading

# The types ggml_quantize_chunk converts float32 into (ggml.c). weight_types() keeps those that need
# no importance matrix and that the CPU backend can multiply (a vec_dot kernel, and a quantizer for
# the activation side it dots with).
_QUANTIZE_CHUNK_TYPES = (0, 1, 30, 2, 3, 6, 7, 8, 10, 11, 12, 13, 14, 16, 17, 18, 19, 20, 21, 22, 23, 29,
                         34, 35, 39, 40, 41, 42)
TYPE_F32 = 0


def _weight_type_table():
    cdef const ggml_type_traits * tr
    cdef const ggml_type_traits_cpu * cpu
    table = {}
    for t in _QUANTIZE_CHUNK_TYPES:
        if t >= GGML_TYPE_COUNT:
            continue
        tr = ggml_get_type_traits(<ggml_type> t)
        cpu = ggml_get_type_traits_cpu(<ggml_type> t)
        if tr.type_name == NULL or tr.blck_size <= 0 or ggml_quantize_requires_imatrix(<ggml_type> t):
            continue
        if cpu.vec_dot == NULL or ggml_get_type_traits_cpu(cpu.vec_dot_type).from_float == NULL:
            continue
        table[tr.type_name.decode()] = (t, int(tr.blck_size), int(tr.type_size),
                                        ggml_get_type_traits(cpu.vec_dot_type).type_name.decode())
    return table


_WEIGHT_TYPES = _weight_type_table()


def weight_types():
    """{name: (ggml type id, block size, bytes per block, type activations are converted to
    when multiplied by it)} of every type a weight may take."""
    return dict(_WEIGHT_TYPES)


def weight_type_info(int t):
    """(name, block size, bytes per block) of the weight type with ggml id ``t``."""
    for name, (tid, block, size, _) in _WEIGHT_TYPES.items():
        if tid == t:
            return name, block, size
    raise GraphBuildError(f"ggml type {t} cannot hold a weight")


def type_name(int t):
    cdef const ggml_type_traits * tr
    if t < 0 or t >= GGML_TYPE_COUNT:
        raise ValueError(f"no ggml type {t}")
    tr = ggml_get_type_traits(<ggml_type> t)
    return tr.type_name.decode() if tr.type_name != NULL else f"type{t}"


def row_bytes(int t, int64_t n):
    return ggml_row_size(<ggml_type> t, n)


cdef _check_weight_type(int t, int64_t n_per_row):
    if t not in {v[0] for v in _WEIGHT_TYPES.values()}:
        raise GraphBuildError(f"ggml type {t} cannot hold a weight")
    blck = ggml_get_type_traits(<ggml_type> t).blck_size
    if n_per_row % blck:
        raise GraphBuildError(f"a {type_name(t)} weight needs rows of a multiple of {blck} values, got {n_per_row}")


cdef void _quantize_rows(int t, const float * src, void * dst, int64_t r0, int64_t r1, int64_t n_per_row) noexcept nogil:
    ggml_quantize_chunk(<ggml_type> t, src, dst, r0 * n_per_row, r1 - r0, n_per_row, NULL)


def _quantize_part(int t, cnp.ndarray arr, cnp.ndarray out, int64_t r0, int64_t r1, int64_t n_per_row):
    cdef const float * src = <const float *> cnp.PyArray_DATA(arr)
    cdef void * dst = cnp.PyArray_DATA(out)
    with nogil:
        _quantize_rows(t, src, dst, r0, r1, n_per_row)


def quantize(int t, a, int threads=1):
    """float32 ``a`` (rows along its last axis) in ggml type ``t``: a uint8 array of the type's
    bytes, quantized by ``threads`` threads (ggml's quantizers are single-threaded)."""
    cdef cnp.ndarray arr = np.ascontiguousarray(a, dtype=np.float32)
    if arr.ndim == 0 or arr.size == 0:
        raise GraphBuildError(f"cannot quantize an empty or scalar array {a.shape}")
    cdef int64_t n_per_row = arr.shape[arr.ndim - 1]
    _check_weight_type(t, n_per_row)
    cdef int64_t nrows = arr.size // n_per_row
    cdef cnp.ndarray out = np.empty(nrows * ggml_row_size(<ggml_type> t, n_per_row), dtype=np.uint8)
    # one part per thread, but at least 64 rows each: a thread costs more than a few rows
    cdef int64_t parts = max(1, min(threads, nrows // 64))
    if parts == 1:
        _quantize_part(t, arr, out, 0, nrows, n_per_row)
        return out
    _quantize_part(t, arr, out, 0, 1, n_per_row)  # initializes the type's tables before the threads start
    bounds = [1 + (nrows - 1) * i // parts for i in range(parts + 1)]
    workers = [threading.Thread(target=_quantize_part, args=(t, arr, out, bounds[i], bounds[i + 1], n_per_row))
               for i in range(parts)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return out


def dequantize(int t, data, tuple shape):
    """The float32 values of ``data`` (the bytes of ggml type ``t``) as an array of ``shape``."""
    cdef cnp.ndarray raw = np.ascontiguousarray(data, dtype=np.uint8).reshape(-1)
    shape = tuple(int(d) for d in shape)
    cdef int64_t n = int(np.prod(shape)) if shape else 1
    cdef int64_t n_per_row = shape[len(shape) - 1] if shape else 1
    _check_weight_type(t, n_per_row)
    if raw.size != (n // n_per_row) * ggml_row_size(<ggml_type> t, n_per_row):
        raise GraphBuildError(f"{raw.size} bytes do not hold a {type_name(t)} array of shape {shape}")
    cdef cnp.ndarray out = np.empty(shape, dtype=np.float32)
    cdef const ggml_type_traits * tr = ggml_get_type_traits(<ggml_type> t)
    if t == TYPE_F32:
        memcpy(cnp.PyArray_DATA(out), cnp.PyArray_DATA(raw), n * sizeof(float))
    else:
        tr.to_float(cnp.PyArray_DATA(raw), <float *> cnp.PyArray_DATA(out), n)
    return out


cdef ggml_backend_buffer_type_t _cpu_extra_buft(const char * name):
    """One of the CPU backend's "extra" buffer types, or NULL: "CPU_REPACK" (q4_0 / q4_K /
    iq4_nl weights interleaved for its GEMM kernels) or "AMX" (weights in the tile layout of
    ggml's AMX int8 kernels, where the CPU has AMX and the kernel allows its use)."""
    cdef ggml_backend_reg_t reg = ggml_backend_cpu_reg()
    cdef ggml_backend_dev_get_extra_bufts_t get_extra = <ggml_backend_dev_get_extra_bufts_t> \
        ggml_backend_reg_get_proc_address(reg, "ggml_backend_dev_get_extra_bufts")
    cdef ggml_backend_buffer_type_t * bufts
    if get_extra == NULL:
        return NULL
    bufts = get_extra(ggml_backend_reg_dev_get(reg, 0))
    while bufts != NULL and bufts[0] != NULL:
        if strcmp(ggml_backend_buft_name(bufts[0]), name) == 0:
            return bufts[0]
        bufts += 1
    return NULL


cdef ggml_backend_buffer_type_t _amx_buft():
    """The AMX buffer type for typed weights, or NULL where the build, CPU or OS has no AMX int8
    or GGONNX_AMX is "0"."""
    if os.environ.get("GGONNX_AMX", "1") == "0":
        return NULL
    return _cpu_extra_buft(b"AMX")


cdef bint _amx_candidate(int t, tuple shape) noexcept:
    """Weights ggml's AMX kernels take (amx/amx.cpp supports_op): q4_0, q4_1, q8_0 (depth a
    multiple of 32) and q4_K, q5_K, q6_K, iq4_xs (of 256), 2-D with rows in whole pairs of
    16-row tiles. Only a matmul can read them: the layout is the kernel's own."""
    cdef int64_t n, k
    if len(shape) != 2:
        return False
    n, k = shape[0], shape[1]
    if n % 32:
        return False
    if t == 2 or t == 3 or t == 8:
        return k % 32 == 0
    if t == 12 or t == 13 or t == 14 or t == 23:
        return k % 256 == 0
    return False


cdef bint _repack_candidate(int t, int64_t ne1) noexcept:
    """ggml's x86 choice of a repacked layout (ggml_repack_get_optimal_repack_type); each weight
    allocated in the repack buffer is checked after allocation, so a mismatch costs only memory."""
    if not ggml_cpu_has_avx2() or ne1 % 8:
        return False
    return t == 2 or t == 12 or t == 20 or t == 39 or (t == 10 and ggml_cpu_has_avx512())


cdef ggml_tensor * _new_weight_tensor(ggml_context * ctx, tuple shape, int t):
    cdef int64_t ne[4]
    cdef int k, nd = len(shape)
    ne[0] = ne[1] = ne[2] = ne[3] = 1
    for k in range(nd):
        ne[k] = shape[nd - 1 - k]
    return ggml_new_tensor_4d(ctx, <ggml_type> t, ne[0], ne[1], ne[2], ne[3])


cdef _set_weight(ggml_tensor * t, a, int threads):
    """Copy float32 ``a`` into weight ``t``, converted to its type (ggml's quantizers; a repack
    buffer repacks on the way in), or ``a`` = (bytes in t's type, shape) as they are."""
    cdef cnp.ndarray q
    cdef cnp.ndarray arr
    if isinstance(a, tuple):
        q = a[0]
        ggml_backend_tensor_set(t, cnp.PyArray_DATA(q), 0, ggml_nbytes(t))
        return
    arr = a
    if t.type == GGML_TYPE_F32:
        ggml_backend_tensor_set(t, cnp.PyArray_DATA(arr), 0, ggml_nbytes(t))
        return
    q = quantize(<int> t.type, arr, threads)
    ggml_backend_tensor_set(t, cnp.PyArray_DATA(q), 0, ggml_nbytes(t))
