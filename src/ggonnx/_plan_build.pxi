# The helpers Plan builds its graph with (included by _core.pyx): constants uploaded to a
# backend, rows named for profiles, and the check that an allocation planned ahead kept every
# node's memory apart from its sources'.


cdef _upload(ggml_backend_t backend, list arrays, ggml_context ** ctx_out, ggml_backend_buffer_t * buf_out,
             vector[ggml_tensor *] & tensors):
    """Create one float32 tensor per array in a new context, allocate them in one buffer of
    ``backend`` and copy the data in; the tensors are appended to ``tensors``."""
    cdef ggml_init_params ip
    cdef cnp.ndarray arr
    cdef int64_t ne[4]
    cdef int k
    cdef size_t first = tensors.size()
    for a in arrays:
        arr = a
        if arr.dtype != np.float32 or not arr.flags.c_contiguous or arr.ndim > 4 or arr.size == 0:
            raise GraphBuildError(f"constant must be a non-empty C-contiguous float32 array of rank <= 4, "
                                  f"got {a.dtype} {a.shape}")
    ip.mem_size = ggml_tensor_overhead() * (len(arrays) + 1)
    ip.mem_buffer = NULL
    ip.no_alloc = True
    ctx_out[0] = ggml_init(ip)
    if ctx_out[0] == NULL:
        raise MemoryError("ggml_init failed for constants")
    for a in arrays:
        arr = a
        ne[0] = ne[1] = ne[2] = ne[3] = 1
        for k in range(arr.ndim):
            ne[k] = arr.shape[arr.ndim - 1 - k]
        tensors.push_back(ggml_new_tensor_4d(ctx_out[0], GGML_TYPE_F32, ne[0], ne[1], ne[2], ne[3]))
    buf_out[0] = ggml_backend_alloc_ctx_tensors(ctx_out[0], backend)
    if buf_out[0] == NULL:
        raise MemoryError("could not allocate a buffer for constants")
    for k in range(len(arrays)):
        arr = arrays[k]
        ggml_backend_tensor_set(tensors[first + k], cnp.PyArray_DATA(arr), 0, ggml_nbytes(tensors[first + k]))


cdef inline void _name_row(ggml_tensor * t, Py_ssize_t row) noexcept nogil:
    """Name a node "#<row>" (profiles find rows by name); vfprintf per node was ~5% of writing
    a plan for each token of a KV cache."""
    cdef char digits[24]
    cdef int n = 0, k
    cdef unsigned long long v = <unsigned long long> row
    while True:
        digits[n] = <char> (48 + v % 10)
        n += 1
        v //= 10
        if v == 0:
            break
    t.name[0] = 35  # '#'
    for k in range(n):
        t.name[k + 1] = digits[n - 1 - k]
    t.name[n + 1] = 0


cdef inline bint _is_view(ggml_tensor * t) noexcept nogil:
    return (t.op == GGML_OP_NONE or t.op == GGML_OP_RESHAPE or t.op == GGML_OP_VIEW
            or t.op == GGML_OP_PERMUTE or t.op == GGML_OP_TRANSPOSE)


cdef bint _in_place_only(ggml_cgraph * g) noexcept nogil:
    """Whether no node's memory overlaps a source's, except a node written over a source of
    the same layout (ggml's in-place reuse for elementwise ops). An allocation planned for larger
    tensors of the same graph keeps every other pair apart: the blocks only hold less."""
    cdef int i, j, k
    cdef ggml_tensor * node
    cdef ggml_tensor * src
    cdef char * a
    cdef char * b
    cdef bint same
    for i in range(ggml_graph_n_nodes(g)):
        node = ggml_graph_node(g, i)
        if node.view_src != NULL or node.data == NULL:
            continue
        a = <char *> node.data
        for j in range(10):  # GGML_MAX_SRC
            src = node.src[j]
            if src == NULL or src.data == NULL:
                continue
            b = <char *> src.data
            if a < b + ggml_nbytes(src) and b < a + ggml_nbytes(node):
                same = a == b and node.type == src.type
                for k in range(4):
                    same = same and node.ne[k] == src.ne[k] and node.nb[k] == src.nb[k]
                if not same:
                    return False
    return True
