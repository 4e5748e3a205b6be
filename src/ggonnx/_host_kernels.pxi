# Host kernels of ours in C, for the host ML operators (host_ml.py).

cdef extern from "host_trees.h" nogil:
    int ggonnx_tree_leaves_f32(const float * x, int64_t n, int64_t c, const int64_t * roots, int64_t n_trees,
                               const int64_t * left, const int64_t * feat, const float * thr,
                               const uint8_t * is_leaf, int mode, int64_t max_steps, int n_threads, int64_t * out)
    int ggonnx_tree_leaves_f64(const double * x, int64_t n, int64_t c, const int64_t * roots, int64_t n_trees,
                               const int64_t * left, const int64_t * feat, const double * thr,
                               const uint8_t * is_leaf, int mode, int64_t max_steps, int n_threads, int64_t * out)
    void ggonnx_tree_sum(const double * w, int64_t k, const int64_t * leaves, int64_t n, int64_t n_trees,
                         double * out)


def tree_sum(w, leaves):
    """[N, K] float64: for each sample the sum, tree by tree, of its leaves' rows of w [nodes, K]."""
    cdef cnp.ndarray wa = np.ascontiguousarray(w, dtype=np.float64)
    cdef cnp.ndarray lv = np.ascontiguousarray(leaves, dtype=np.int64)
    if wa.ndim != 2 or lv.ndim != 2 or (lv.size and (lv.min() < 0 or lv.max() >= wa.shape[0])):
        raise ValueError("tree_sum: leaves must index rows of w")
    cdef cnp.ndarray out = np.empty((lv.shape[0], wa.shape[1]), dtype=np.float64)
    with nogil:
        ggonnx_tree_sum(<const double *> cnp.PyArray_DATA(wa), wa.shape[1], <const int64_t *> cnp.PyArray_DATA(lv),
                        lv.shape[0], lv.shape[1], <double *> cnp.PyArray_DATA(out))
    return out


def tree_leaves(x, roots, left, feat, thr, is_leaf, int mode, int64_t max_steps, int threads=1):
    """[N, trees] int64 leaf of each sample in each tree (host_trees.c): x [N, C] of thr's dtype
    (float32 or float64), NaN-free; every feature index < C; every branch tested by ``mode``;
    big batches split the trees between up to ``threads`` threads."""
    cdef cnp.ndarray xa = np.ascontiguousarray(x, dtype=thr.dtype)
    cdef cnp.ndarray r = np.ascontiguousarray(roots, dtype=np.int64)
    cdef cnp.ndarray lf = np.ascontiguousarray(left, dtype=np.int64)
    cdef cnp.ndarray ft = np.ascontiguousarray(feat, dtype=np.int64)
    cdef cnp.ndarray th = np.ascontiguousarray(thr)
    cdef cnp.ndarray leaf = np.ascontiguousarray(is_leaf, dtype=np.uint8)
    cdef int64_t n = xa.shape[0], c = xa.shape[1], n_trees = r.shape[0]
    cdef int64_t n_nodes = lf.shape[0]
    cdef int status = 0
    cdef cnp.ndarray out = np.empty((n, n_trees), dtype=np.int64)
    if not 0 <= mode <= 3 or xa.ndim != 2 or not (lf.shape[0] == ft.shape[0] == th.shape[0] == leaf.shape[0]) \
            or n_nodes >= 2**31 or (n_trees and (r[0] != 0 or np.any(np.diff(r) <= 0) or r[n_trees - 1] >= n_nodes)):
        raise ValueError("tree_leaves: malformed forest or input")
    if th.dtype == np.float32:
        with nogil:
            status = ggonnx_tree_leaves_f32(<const float *> cnp.PyArray_DATA(xa), n, c,
                                   <const int64_t *> cnp.PyArray_DATA(r), n_trees, <const int64_t *> cnp.PyArray_DATA(lf),
                                   <const int64_t *> cnp.PyArray_DATA(ft), <const float *> cnp.PyArray_DATA(th),
                                   <const uint8_t *> cnp.PyArray_DATA(leaf), mode, max_steps, threads,
                                   <int64_t *> cnp.PyArray_DATA(out))
    elif th.dtype == np.float64:
        with nogil:
            status = ggonnx_tree_leaves_f64(<const double *> cnp.PyArray_DATA(xa), n, c,
                                   <const int64_t *> cnp.PyArray_DATA(r), n_trees, <const int64_t *> cnp.PyArray_DATA(lf),
                                   <const int64_t *> cnp.PyArray_DATA(ft), <const double *> cnp.PyArray_DATA(th),
                                   <const uint8_t *> cnp.PyArray_DATA(leaf), mode, max_steps, threads,
                                   <int64_t *> cnp.PyArray_DATA(out))
    else:
        raise ValueError(f"tree_leaves: thresholds must be float32 or float64, got {th.dtype}")
    if status != 0:
        raise ValueError(f"tree_leaves: unknown test mode {mode}")
    return out
