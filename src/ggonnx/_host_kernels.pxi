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

cdef extern from "host_svm.h" nogil:
    int ggonnx_svm_coupling(const float * val, int64_t n, int64_t pairs, const int64_t * pair_i,
                            const int64_t * pair_j, int64_t k, float * out)


def svm_coupling(val, pair_i, pair_j, int64_t k):
    """[N, k] float32 class probabilities from pairwise ones val [N, pairs] (host_svm.c); pair p
    compares classes pair_i[p] and pair_j[p], each in [0, k)."""
    cdef cnp.ndarray v = np.ascontiguousarray(val, dtype=np.float32)
    cdef cnp.ndarray pi = np.ascontiguousarray(pair_i, dtype=np.int64)
    cdef cnp.ndarray pj = np.ascontiguousarray(pair_j, dtype=np.int64)
    if v.ndim != 2 or pi.ndim != 1 or pi.shape[0] != v.shape[1] or pj.shape[0] != v.shape[1] or k < 1 \
            or (pi.size and (pi.min() < 0 or pi.max() >= k or pj.min() < 0 or pj.max() >= k)):
        raise ValueError("svm_coupling: pairs must index classes [0, k) and match val's columns")
    cdef cnp.ndarray out = np.empty((v.shape[0], k), dtype=np.float32)
    cdef int status
    with nogil:
        status = ggonnx_svm_coupling(<const float *> cnp.PyArray_DATA(v), v.shape[0], v.shape[1],
                                     <const int64_t *> cnp.PyArray_DATA(pi), <const int64_t *> cnp.PyArray_DATA(pj),
                                     k, <float *> cnp.PyArray_DATA(out))
    if status != 0:
        raise MemoryError("svm_coupling")
    return out


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


cdef class TreeWalk:
    """A forest's walk (host_trees.c), its arrays checked and converted once: ``leaves(x)`` per
    run then only checks x (a batch-1 call went from ~11 to ~2 us). Nodes: ``left`` child index
    (a leaf points at itself), ``feat``, threshold ``thr`` (float32 or float64), ``is_leaf``;
    trees start at ``roots`` (ascending, the first 0); every branch tested by ``mode`` (0 <=,
    1 <, 2 >=, 3 >); walks stop after ``max_steps``."""
    cdef cnp.ndarray roots, left, feat, thr, is_leaf
    cdef int mode
    cdef int64_t max_steps, n_feat

    def __init__(self, roots, left, feat, thr, is_leaf, int mode, int64_t max_steps):
        self.roots = np.ascontiguousarray(roots, dtype=np.int64)
        self.left = np.ascontiguousarray(left, dtype=np.int64)
        self.feat = np.ascontiguousarray(feat, dtype=np.int64)
        self.thr = np.ascontiguousarray(thr)
        self.is_leaf = np.ascontiguousarray(is_leaf, dtype=np.uint8)
        self.mode, self.max_steps = mode, max_steps
        cdef int64_t n_nodes = self.left.shape[0], n_trees = self.roots.shape[0]
        if not 0 <= mode <= 3 or self.thr.dtype not in (np.float32, np.float64) or not (
                self.left.ndim == self.feat.ndim == self.thr.ndim == self.is_leaf.ndim == self.roots.ndim == 1) \
                or not (n_nodes == self.feat.shape[0] == self.thr.shape[0] == self.is_leaf.shape[0]) \
                or n_nodes >= 2**31 or (n_nodes and (self.left.min() < 0 or self.left.max() >= n_nodes
                                                     or self.feat.min() < 0)) \
                or (n_trees and (self.roots[0] != 0 or np.any(np.diff(self.roots) <= 0)
                                 or self.roots[n_trees - 1] >= n_nodes)):
            raise ValueError("TreeWalk: malformed forest")
        self.n_feat = int(self.feat.max()) + 1 if n_nodes else 0

    def leaves(self, x, int threads=1):
        """[N, trees] int64 leaf of each sample of x [N, C] (NaN-free) in each tree; big batches
        split the trees between up to ``threads`` threads."""
        cdef cnp.ndarray xa = np.ascontiguousarray(x, dtype=self.thr.dtype)
        if xa.ndim != 2 or xa.shape[1] < self.n_feat:
            raise ValueError(f"TreeWalk: input {np.shape(x)} must be [N, >= {self.n_feat}]")
        cdef int64_t n = xa.shape[0], c = xa.shape[1], n_trees = self.roots.shape[0]
        cdef cnp.ndarray out = np.empty((n, n_trees), dtype=np.int64)
        cdef int status
        if self.thr.dtype == np.float32:
            with nogil:
                status = ggonnx_tree_leaves_f32(<const float *> cnp.PyArray_DATA(xa), n, c,
                                       <const int64_t *> cnp.PyArray_DATA(self.roots), n_trees,
                                       <const int64_t *> cnp.PyArray_DATA(self.left),
                                       <const int64_t *> cnp.PyArray_DATA(self.feat),
                                       <const float *> cnp.PyArray_DATA(self.thr),
                                       <const uint8_t *> cnp.PyArray_DATA(self.is_leaf), self.mode, self.max_steps,
                                       threads, <int64_t *> cnp.PyArray_DATA(out))
        else:
            with nogil:
                status = ggonnx_tree_leaves_f64(<const double *> cnp.PyArray_DATA(xa), n, c,
                                       <const int64_t *> cnp.PyArray_DATA(self.roots), n_trees,
                                       <const int64_t *> cnp.PyArray_DATA(self.left),
                                       <const int64_t *> cnp.PyArray_DATA(self.feat),
                                       <const double *> cnp.PyArray_DATA(self.thr),
                                       <const uint8_t *> cnp.PyArray_DATA(self.is_leaf), self.mode, self.max_steps,
                                       threads, <int64_t *> cnp.PyArray_DATA(out))
        if status != 0:
            raise ValueError(f"TreeWalk: unknown test mode {self.mode}")
        return out
