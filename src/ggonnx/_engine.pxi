# The Engine: a session's backends, thread pools, weights and compute memory (included by
# _core.pyx; plans compute on it).


cdef class Engine:
    """Backends, thread pool and weights of one session, shared by all its plans.

    Computes on one engine are serialised by a lock: the CPU backend and its
    thread pool serve one graph at a time.
    """
    cdef ggml_backend_t cpu
    cdef ggml_backend_t blas
    cdef ggml_threadpool * pool
    # the same CPU backend on a pool of one (no worker threads), for plans too small for more:
    # starting a graph on the main pool wakes every worker, even for one thread (~25 us a run)
    cdef ggml_backend_t cpu_single
    cdef ggml_threadpool * pool_single
    cdef readonly int n_threads
    cdef vector[ggml_tensor *] weights
    cdef vector[ggml_context *] weight_ctxs
    cdef vector[ggml_backend_buffer_t] weight_bufs
    cdef ggml_backend_buffer_type_t repack_buft
    cdef ggml_backend_buffer_type_t amx_buft
    cdef ggonnx_scratch * cpu_scratch    # compute memory of all plans (scratch.h), one pool a backend
    cdef ggonnx_scratch * blas_scratch
    cdef PyThread_type_lock lock
    cdef readonly size_t weight_bytes

    def __cinit__(self, int n_threads, bint use_blas=True):
        cdef ggml_threadpool_params params
        if n_threads < 1 or n_threads > MAX_THREADS:
            raise ValueError(f"threads must be between 1 and {MAX_THREADS}, got {n_threads}")
        self.n_threads = n_threads
        self.lock = PyThread_allocate_lock()
        self.cpu = ggml_backend_cpu_init()
        if self.cpu == NULL:
            raise MemoryError("ggml_backend_cpu_init failed")
        params = ggml_threadpool_params_default(n_threads)
        params.poll = 0  # idle workers sleep instead of spinning between runs
        self.pool = ggml_threadpool_new(&params)
        if self.pool == NULL:
            raise MemoryError("ggml_threadpool_new failed")
        ggml_backend_cpu_set_threadpool(self.cpu, self.pool)
        ggml_backend_cpu_set_n_threads(self.cpu, n_threads)
        self.cpu_single = ggml_backend_cpu_init()
        params = ggml_threadpool_params_default(1)
        params.poll = 0
        self.pool_single = ggml_threadpool_new(&params)
        if self.cpu_single == NULL or self.pool_single == NULL:
            raise MemoryError("could not make the single-thread CPU backend")
        ggml_backend_cpu_set_threadpool(self.cpu_single, self.pool_single)
        ggml_backend_cpu_set_n_threads(self.cpu_single, 1)
        self.blas = ggml_backend_blas_init() if use_blas else NULL
        if self.blas != NULL:
            ggml_backend_blas_set_n_threads(self.blas, n_threads)
        self.weight_bytes = 0
        self.repack_buft = _cpu_extra_buft(b"CPU_REPACK")
        self.amx_buft = _amx_buft()
        # Two pools, distinct buffer types: ggml's scheduler moves a node to a higher-priority
        # backend when both use the same buffer type, and a graph's two buffers must not overlap.
        self.cpu_scratch = ggonnx_scratch_new(ggml_backend_cpu_buffer_type(), b"ggonnx scratch (CPU)")
        self.blas_scratch = ggonnx_scratch_new(ggml_backend_cpu_buffer_type(), b"ggonnx scratch (BLAS)")
        if self.cpu_scratch == NULL or self.blas_scratch == NULL:
            raise MemoryError("could not create the compute memory pools")

    def __dealloc__(self):
        cdef size_t i
        for i in range(self.weight_bufs.size()):
            ggml_backend_buffer_free(self.weight_bufs[i])
        for i in range(self.weight_ctxs.size()):
            ggml_free(self.weight_ctxs[i])
        if self.blas != NULL:
            ggml_backend_free(self.blas)
        if self.cpu != NULL:
            ggml_backend_free(self.cpu)
        if self.cpu_single != NULL:
            ggml_backend_free(self.cpu_single)
        if self.pool_single != NULL:
            ggml_threadpool_free(self.pool_single)
        if self.pool != NULL:
            ggml_threadpool_free(self.pool)
        ggonnx_scratch_release(self.cpu_scratch)
        ggonnx_scratch_release(self.blas_scratch)
        if self.lock != NULL:
            PyThread_free_lock(self.lock)

    @property
    def scratch_blocks_made(self):
        """Compute memory blocks allocated so far (a plan needing more than the current one makes one)."""
        return ggonnx_scratch_blocks_made(self.cpu_scratch) + ggonnx_scratch_blocks_made(self.blas_scratch)

    @property
    def has_blas(self):
        return self.blas != NULL

    @property
    def n_weights(self):
        return self.weights.size()

    def add_weights(self, list arrays, list types=None, list repack_ok=None):
        """Upload float32 arrays (ggml shape = reversed numpy shape) once, each converted to its
        ggml type (``types``, float32 when None); an entry may instead be (uint8 bytes, shape)
        already in its type. Returns the index of the first. Types with a repacked CPU layout go
        to the CPU's repack buffer (unless ``repack_ok[k]`` is false: only a matmul can read a
        repacked weight), the rest to one plain buffer."""
        cdef size_t first = self.weights.size()
        cdef Py_ssize_t n = len(arrays), k
        if n == 0:
            return first
        if types is None:
            types = [TYPE_F32] * n
        if len(types) != n:
            raise GraphBuildError(f"{n} weights but {len(types)} types")
        shapes = []
        for k in range(n):
            a = arrays[k]
            if isinstance(a, tuple):  # (bytes already in the weight's type, shape): stored as they are
                data, shape = a
                shape = tuple(int(d) for d in shape)
                if not (1 <= len(shape) <= 4) or min(shape) < 1:
                    raise GraphBuildError(f"typed weight shape {shape} must be non-empty of rank 1 to 4")
                _check_weight_type(types[k], shape[len(shape) - 1])
                if data.dtype != np.uint8 or not data.flags.c_contiguous or \
                        data.size != int(np.prod(shape[:len(shape) - 1])) * row_bytes(types[k], shape[len(shape) - 1]):
                    raise GraphBuildError(f"{data.size} bytes ({data.dtype}) do not hold a {type_name(types[k])} "
                                          f"weight of shape {shape}")
            else:
                if a.dtype != np.float32 or not a.flags.c_contiguous or not 1 <= a.ndim <= 4 or a.size == 0:
                    raise GraphBuildError(f"weight must be a non-empty C-contiguous float32 array of rank 1 to 4, "
                                          f"got {a.dtype} {a.shape}")
                shape = tuple(a.shape)
                _check_weight_type(types[k], shape[len(shape) - 1])  # (no negative indexing: wraparound is off)
            shapes.append(shape)
        amx = [k for k in range(n) if self.amx_buft != NULL and (repack_ok is None or repack_ok[k])
               and _amx_candidate(types[k], shapes[k])]
        in_amx = set(amx)
        repack = [k for k in range(n) if k not in in_amx and self.repack_buft != NULL
                  and (repack_ok is None or repack_ok[k])
                  and _repack_candidate(types[k], shapes[k][len(shapes[k]) - 2] if len(shapes[k]) > 1 else 1)]
        in_repack = set(repack)
        plain = [k for k in range(n) if k not in in_repack and k not in in_amx]
        self.weights.resize(first + n, NULL)
        try:
            if amx:
                self._alloc_weights(amx, shapes, types, self.amx_buft, first)
            if repack:
                self._alloc_weights(repack, shapes, types, self.repack_buft, first)
                # a weight ggml would not repack cannot be written there: it moves to the plain buffer
                plain += [k for k in repack if self.weights[first + k].extra == NULL]
                repack = [k for k in repack if self.weights[first + k].extra != NULL]
            if plain:
                self._alloc_weights(sorted(plain), shapes, types, ggml_backend_cpu_buffer_type(), first)
            for k in range(n):
                _set_weight(self.weights[first + k], arrays[k], self.n_threads)
        except BaseException:
            self.weights.resize(first)
            raise
        return first

    cdef _alloc_weights(self, list ks, list shapes, list types, ggml_backend_buffer_type_t buft, size_t first):
        """Tensors for weights ``ks`` in a new context, allocated in one buffer of type ``buft``."""
        cdef ggml_init_params ip
        cdef ggml_context * ctx
        cdef ggml_backend_buffer_t buf
        ip.mem_size = ggml_tensor_overhead() * (len(ks) + 1)
        ip.mem_buffer = NULL
        ip.no_alloc = True
        ctx = ggml_init(ip)
        if ctx == NULL:
            raise MemoryError("ggml_init failed for weights")
        self.weight_ctxs.push_back(ctx)  # freed by __dealloc__ whatever happens next
        for k in ks:
            self.weights[first + k] = _new_weight_tensor(ctx, shapes[k], types[k])
        buf = ggml_backend_alloc_ctx_tensors_from_buft(ctx, buft)
        if buf == NULL:
            raise MemoryError(f"could not allocate a {ggml_backend_buft_name(buft).decode()} buffer for weights")
        ggml_backend_buffer_set_usage(buf, GGML_BACKEND_BUFFER_USAGE_WEIGHTS)
        self.weight_bufs.push_back(buf)
        self.weight_bytes += ggml_backend_buffer_get_size(buf)

    def weight_info(self, size_t idx):
        """(ggml type name, buffer type name, bytes) of weight ``idx``."""
        cdef ggml_tensor * t
        if idx >= self.weights.size():
            raise IndexError(f"no weight {idx}")
        t = self.weights[idx]
        name = ggml_backend_buft_name(ggml_backend_buffer_get_type(<ggml_backend_buffer_t> t.buffer)).decode()
        return (type_name(t.type), name, ggml_nbytes(t))
