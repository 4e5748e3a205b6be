# Output arrays that ggml computes into directly (Plan.run), from a pool of recycled blocks.
#
# A plan's outputs were computed in the scratch block and copied into fresh numpy arrays: one
# extra pass over every output, and fresh pages to fault in (glibc maps big arrays anew each
# time). A KV cache of 1,000 positions made that copy 30 ms of gpt2's 56 ms token. Now each
# output is a view of a _HostBlock that ggml writes into; when the array dies its block goes
# back to a small pool, and the next run's outputs of about that size reuse it, already mapped.

from libc.stdlib cimport free
from cpython.buffer cimport PyBuffer_FillInfo

cdef extern from "<stdlib.h>" nogil:
    int posix_memalign(void ** memptr, size_t alignment, size_t size)

cdef dict _free_blocks = {}      # size class -> [address, ...] (the GIL guards it)
cdef size_t _free_bytes = 0
cdef size_t _pool_cap = 0        # at most what one run's outputs took, at the largest run seen
cdef size_t _blocks_made = 0     # blocks allocated rather than taken from the pool


def output_blocks_made() -> int:
    """How many output blocks runs have allocated so far (the rest came from the pool)."""
    return _blocks_made


cdef size_t _size_class(size_t n) noexcept:
    """``n`` rounded up to one of 8 steps per power of two (<= 12.5% spare), at least 4 KiB:
    a cache growing by one position a token stays in one class for many tokens."""
    cdef size_t top = 4096, step
    while top < n:
        top <<= 1
    step = top >> 3
    return max(<size_t> 4096, ((n + step - 1) // step) * step)


cdef class _HostBlock:
    """64-byte aligned memory that numpy arrays view (buffer protocol); returned to the pool
    when the last view dies."""
    cdef void * data
    cdef size_t size

    def __getbuffer__(self, Py_buffer * view, int flags):
        PyBuffer_FillInfo(view, self, self.data, <Py_ssize_t> self.size, 0, flags)

    def __releasebuffer__(self, Py_buffer * view):
        pass

    def __dealloc__(self):
        global _free_bytes
        cdef size_t cls
        if self.data == NULL:
            return
        if self.size > _pool_cap:
            free(self.data)
            return
        # a full pool gives up the size classes used least recently first: the sizes runs make now
        # are the ones worth keeping (blocks of shapes no longer run held the pool for ever, and a
        # dropped output of a new size was freed instead of reused)
        while _free_bytes + self.size > _pool_cap and _free_blocks:
            cls = next(iter(_free_blocks))
            stack = _free_blocks[cls]
            if stack:
                free(<void *> <uintptr_t> stack.pop())
                _free_bytes -= cls
            if not stack:
                del _free_blocks[cls]
        stack = _free_blocks.pop(self.size, [])   # re-inserted last: the classes stay in order of use
        stack.append(<uintptr_t> self.data)
        _free_blocks[self.size] = stack
        _free_bytes += self.size


cdef object _output_array(tuple shape, size_t nbytes, void ** data):
    """An empty float32 array of ``shape`` in a pooled block; its address in ``data``."""
    global _free_bytes, _blocks_made
    cdef size_t cls = _size_class(nbytes)
    cdef _HostBlock block = _HostBlock.__new__(_HostBlock)
    cdef void * p = NULL
    cdef int k
    # a block of this class or of the next two serves; a new one is made two classes up, so an
    # output that grows every run (a KV cache) maps fresh pages once per three classes, not once
    # per class (24 blocks of a few hundred KB each, faulted in: ~1 ms every ~10 gpt2 tokens)
    for k in range(3):
        stack = _free_blocks.get(cls)
        if stack:
            p = <void *> <uintptr_t> stack.pop()
            _free_bytes -= cls
            break
        if k < 2:
            cls = _size_class(cls + 1)
    if p == NULL:
        if posix_memalign(&p, 64, cls) != 0:
            raise MemoryError(f"could not allocate {cls} bytes for an output")
        _blocks_made += 1
    block.data = p
    block.size = cls
    data[0] = p
    return np.frombuffer(block, dtype=np.float32, count=<Py_ssize_t> (nbytes // 4)).reshape(shape)


cdef size_t POOL_MAX_BYTES = 256 << 20   # what the pool may hold at most, whatever the runs' size


cdef void _note_run_output_bytes(size_t total) noexcept:
    """Let the pool keep up to about one run's outputs of the largest run so far (a KV cache of
    1,000 positions: 74 MB), in blocks up to three classes (37.5%) above their size, but never
    more than POOL_MAX_BYTES."""
    global _pool_cap
    if total + total // 2 > _pool_cap:
        _pool_cap = min(total + total // 2, POOL_MAX_BYTES)
