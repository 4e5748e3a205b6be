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
    void ggonnx_tree_sum_targets(const double * w, const int64_t * target, int64_t k, const int64_t * leaves,
                                 int64_t n, int64_t n_trees, double * out)

cdef extern from "host_scores.h" nogil:
    int ggonnx_scores_classify(double * s, int64_t n, int64_t k, const double * base, int64_t n_base,
                               const uint8_t * has, int compare_f32, int post, int64_t * best, float * out)

cdef extern from "host_topk.h" nogil:
    void ggonnx_topk_f32(const float * x, int64_t n, int64_t m, int64_t k, int largest, float * values,
                         int64_t * indices)
    void ggonnx_topk_f64(const double * x, int64_t n, int64_t m, int64_t k, int largest, double * values,
                         int64_t * indices)
    void ggonnx_topk_i64(const int64_t * x, int64_t n, int64_t m, int64_t k, int largest, int64_t * values,
                         int64_t * indices)
    void ggonnx_topk_i32(const int32_t * x, int64_t n, int64_t m, int64_t k, int largest, int32_t * values,
                         int64_t * indices)

cdef extern from "host_rnn.h" nogil:
    struct ggonnx_rnn_acts:
        int kind[3]
        float alpha[3]
        float beta[3]
    int ggonnx_rnn_direction(int kind, const float * x, const float * wt, const float * bias, const float * rt,
                             const float * rbh, const float * peep, const int64_t * lens, const float * h0,
                             const float * c0, int64_t seq, int64_t batch, int64_t n_in, int64_t hidden, int reverse,
                             int gru_lbr, const ggonnx_rnn_acts * acts, float clip, int input_forget, float * y,
                             int64_t y_step, int64_t y_row, float * hn, float * cn)


cdef const float * _opt_f32(object a, int64_t size, str what) except? NULL:
    """The data of an optional float32 C-contiguous array of ``size`` elements (None: NULL)."""
    if a is None:
        return NULL
    if not isinstance(a, np.ndarray) or a.dtype != np.float32 or not a.flags.c_contiguous or a.size != size:
        raise ValueError(f"rnn_direction: {what} must be a contiguous float32 array of {size} values")
    return <const float *> cnp.PyArray_DATA(a)


def rnn_direction(int kind, x, wt, bias, rt, rbh, peep, lens, h0, c0, bint reverse, bint gru_lbr, acts=None,
                  float clip=0.0, bint input_forget=False):
    """One direction of an RNN (kind 0), GRU (1) or LSTM (2) (host_rnn.c): x [seq, batch, I],
    wt [I, G*H] W transposed, rt [H, G*H] R transposed; optional bias [G*H], rbh [H], peep [3H],
    lens [batch] (1..seq), h0 / c0 [batch, H] (float32, C-contiguous); acts: three (kind, alpha,
    beta) of the activations f, g, h (host_rnn.h's codes), None for ONNX's defaults; clip > 0
    clamps every gate's input; input_forget (LSTM) couples the forget gate to the input gate.
    Returns (y [seq, batch, H], hn [batch, H], cn [batch, H])."""
    cdef ggonnx_rnn_acts a
    cdef const ggonnx_rnn_acts * acts_p = NULL
    if acts is not None:
        if len(acts) != 3 or any(not 0 <= int(k) <= 10 for k, _, _ in acts):
            raise ValueError("rnn_direction: acts must be three (kind 0..10, alpha, beta)")
        for j in range(3):
            a.kind[j], a.alpha[j], a.beta[j] = int(acts[j][0]), float(acts[j][1]), float(acts[j][2])
        acts_p = &a
    cdef cnp.ndarray xa = np.ascontiguousarray(x, dtype=np.float32)
    cdef cnp.ndarray w = np.ascontiguousarray(wt, dtype=np.float32)
    cdef cnp.ndarray r = np.ascontiguousarray(rt, dtype=np.float32)
    if kind not in (0, 1, 2) or xa.ndim != 3 or w.ndim != 2 or r.ndim != 2:
        raise ValueError("rnn_direction: x must be [seq, batch, I], wt [I, G*H] and rt [H, G*H]")
    cdef int64_t seq = xa.shape[0], batch = xa.shape[1], n_in = xa.shape[2], hidden = r.shape[0]
    cdef int64_t gates = (1, 3, 4)[kind]
    if r.shape[1] != gates * hidden or w.shape[0] != n_in or w.shape[1] != gates * hidden or hidden < 1:
        raise ValueError(f"rnn_direction: wt {np.shape(wt)} / rt {np.shape(rt)} for {gates} gates of {hidden} over "
                         f"{n_in} inputs")
    cdef cnp.ndarray ln = None
    cdef const int64_t * lens_p = NULL
    if lens is not None:
        ln = np.ascontiguousarray(lens, dtype=np.int64)
        if ln.ndim != 1 or ln.shape[0] != batch or (batch and (ln.min() < 1 or ln.max() > seq)):
            raise ValueError(f"rnn_direction: sequence lengths must be {batch} values in [1, {seq}]")
        lens_p = <const int64_t *> cnp.PyArray_DATA(ln)
    cdef const float * bias_p = _opt_f32(bias, gates * hidden, "bias")
    cdef const float * rbh_p = _opt_f32(rbh, hidden, "rbh")
    cdef const float * peep_p = _opt_f32(peep, 3 * hidden, "peep")
    cdef const float * h0_p = _opt_f32(h0, batch * hidden, "h0")
    cdef const float * c0_p = _opt_f32(c0, batch * hidden, "c0")
    cdef cnp.ndarray y = np.empty((seq, batch, hidden), dtype=np.float32)
    cdef cnp.ndarray hn = np.empty((batch, hidden), dtype=np.float32)
    cdef cnp.ndarray cn = np.empty((batch, hidden), dtype=np.float32)
    cdef int status
    with nogil:
        status = ggonnx_rnn_direction(kind, <const float *> cnp.PyArray_DATA(xa), <const float *> cnp.PyArray_DATA(w),
                                      bias_p, <const float *> cnp.PyArray_DATA(r), rbh_p, peep_p, lens_p, h0_p, c0_p,
                                      seq, batch, n_in, hidden, reverse, gru_lbr, acts_p, clip, input_forget,
                                      <float *> cnp.PyArray_DATA(y),
                                      batch * hidden, hidden, <float *> cnp.PyArray_DATA(hn),
                                      <float *> cnp.PyArray_DATA(cn))
    if status != 0:
        raise MemoryError("rnn_direction")
    return y, hn, cn


cdef extern from "host_nms.h" nogil:
    int64_t ggonnx_nms(const float * boxes, const float * scores, int64_t batches, int64_t classes, int64_t n,
                       int64_t max_out, float iou_threshold, int has_threshold, float score_threshold, int center,
                       int64_t * out)


def nms(boxes, scores, int64_t max_out, float iou_threshold, score_threshold, bint center):
    """[K, 3] int64 (batch, class, box) of ONNX NonMaxSuppression (host_nms.c): boxes [B, N, 4],
    scores [B, C, N] float32; score_threshold None for none."""
    cdef cnp.ndarray bx = np.ascontiguousarray(boxes, dtype=np.float32)
    cdef cnp.ndarray sc = np.ascontiguousarray(scores, dtype=np.float32)
    if bx.ndim != 3 or sc.ndim != 3 or bx.shape[2] != 4 or bx.shape[0] != sc.shape[0] or bx.shape[1] != sc.shape[2]:
        raise ValueError(f"nms: boxes {np.shape(boxes)} and scores {np.shape(scores)} do not fit")
    cdef int64_t batches = bx.shape[0], classes = sc.shape[1], n = bx.shape[1]
    cdef int64_t room = batches * classes * min(n, max(max_out, 0))
    cdef cnp.ndarray out = np.empty((room, 3), dtype=np.int64)
    cdef int has = score_threshold is not None
    cdef float thr = float(score_threshold) if has else 0.0
    cdef int64_t count
    if room == 0:
        return out
    with nogil:
        count = ggonnx_nms(<const float *> cnp.PyArray_DATA(bx), <const float *> cnp.PyArray_DATA(sc), batches,
                           classes, n, max_out, iou_threshold, has, thr, center, <int64_t *> cnp.PyArray_DATA(out))
    if count < 0:
        raise MemoryError("nms")
    return out[:count].copy()


cdef extern from "host_svm.h" nogil:
    int ggonnx_svm_coupling(const float * val, int64_t n, int64_t pairs, const int64_t * pair_i,
                            const int64_t * pair_j, int64_t k, float * out)
    int ggonnx_svc_rows(const float * x, int64_t n, int64_t f, const float * svt, int64_t v, int kind, float gamma,
                        float coef0, float degree, const double * w, const double * rho, int64_t pairs,
                        const int64_t * pair_i, const int64_t * pair_j, int64_t k, const float * prob_a,
                        const float * prob_b, float * scores, int64_t * best, float * proba)


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


# kernel_type names, as ggonnx_svc_rows numbers them
SVM_KERNELS = {"LINEAR": 0, "POLY": 1, "RBF": 2, "SIGMOID": 3}


cdef class SvcRows:
    """A one-against-one SVC's decisions row by row in C (host_svm.c), its arrays checked once:
    support vectors sv [V, F], pair weights w [V, pairs] and rho [pairs] (float64), pairs
    (pair_i[p], pair_j[p]) of k classes, optional prob_a / prob_b [pairs]. For small batches,
    where the GEMM path's dozen numpy calls cost more than the arithmetic."""
    cdef cnp.ndarray svt, w, rho, pair_i, pair_j, prob_a, prob_b
    cdef int kind
    cdef float gamma, coef0, degree
    cdef int64_t k

    def __init__(self, sv, str kind, float gamma, float coef0, float degree, w, rho, pair_i, pair_j, int64_t k,
                 prob_a=None, prob_b=None):
        sv = np.asarray(sv, dtype=np.float32)
        self.svt = np.ascontiguousarray(sv.T)
        self.w = np.ascontiguousarray(w, dtype=np.float64)
        self.rho = np.ascontiguousarray(rho, dtype=np.float64)
        self.pair_i = np.ascontiguousarray(pair_i, dtype=np.int64)
        self.pair_j = np.ascontiguousarray(pair_j, dtype=np.int64)
        cdef int64_t pairs = self.pair_i.shape[0]
        if kind not in SVM_KERNELS or sv.ndim != 2 or self.w.ndim != 2 or self.w.shape[0] != sv.shape[0] \
                or self.w.shape[1] != pairs or self.rho.shape[0] != pairs or self.pair_j.shape[0] != pairs \
                or k < 1 or (pairs and (self.pair_i.min() < 0 or self.pair_i.max() >= k
                                        or self.pair_j.min() < 0 or self.pair_j.max() >= k)):
            raise ValueError("SvcRows: malformed SVC")
        if prob_a is not None:
            self.prob_a = np.ascontiguousarray(prob_a, dtype=np.float32)
            self.prob_b = np.ascontiguousarray(prob_b, dtype=np.float32)
            if self.prob_a.shape[0] < pairs or self.prob_b.shape[0] < pairs:
                raise ValueError("SvcRows: prob_a and prob_b need one value per pair")
        self.kind, self.gamma, self.coef0, self.degree, self.k = SVM_KERNELS[kind], gamma, coef0, degree, k

    def run(self, x):
        """(best class index int64 [N], pair scores float32 [N, pairs], class probabilities
        float32 [N, k] or None without prob_a) for rows x [N, F]."""
        cdef cnp.ndarray xa = np.ascontiguousarray(x, dtype=np.float32)
        if xa.ndim != 2 or xa.shape[1] != self.svt.shape[0]:
            raise ValueError(f"SvcRows: input {np.shape(x)} must be [N, {self.svt.shape[0]}]")
        cdef int64_t n = xa.shape[0], pairs = self.pair_i.shape[0]
        cdef cnp.ndarray scores = np.empty((n, pairs), dtype=np.float32)
        cdef cnp.ndarray best = np.empty(n, dtype=np.int64)
        cdef cnp.ndarray proba = None
        cdef const float * pa = NULL
        cdef const float * pb = NULL
        cdef float * pp = NULL
        if self.prob_a is not None:
            proba = np.empty((n, self.k), dtype=np.float32)
            pa, pb = <const float *> cnp.PyArray_DATA(self.prob_a), <const float *> cnp.PyArray_DATA(self.prob_b)
            pp = <float *> cnp.PyArray_DATA(proba)
        cdef int status
        with nogil:
            status = ggonnx_svc_rows(<const float *> cnp.PyArray_DATA(xa), n, xa.shape[1],
                                     <const float *> cnp.PyArray_DATA(self.svt), self.svt.shape[1], self.kind,
                                     self.gamma, self.coef0, self.degree, <const double *> cnp.PyArray_DATA(self.w),
                                     <const double *> cnp.PyArray_DATA(self.rho), pairs,
                                     <const int64_t *> cnp.PyArray_DATA(self.pair_i),
                                     <const int64_t *> cnp.PyArray_DATA(self.pair_j), self.k, pa, pb,
                                     <float *> cnp.PyArray_DATA(scores), <int64_t *> cnp.PyArray_DATA(best), pp)
        if status != 0:
            raise MemoryError("SvcRows")
        return best, scores, proba


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


# the post transforms ggonnx_scores_classify computes, by name
SCORE_POSTS = {"NONE": 0, "SOFTMAX": 1, "LOGISTIC": 2}


def scores_classify(cnp.ndarray s, base, has, bint compare_f32, int post):
    """(labels, probabilities) of score rows s [N, K] (C-contiguous float64, base values added in
    place to its first columns: ``base`` float64 [<= K] or None): int64 [N], numpy's argmax of
    each row with the columns outside ``has`` (uint8 [K] or None) at -inf, compared in float32
    where ``compare_f32``; and float32 [N, K], the rows after ``post`` (SCORE_POSTS)."""
    cdef cnp.ndarray ba = None if base is None else np.ascontiguousarray(base, dtype=np.float64)
    cdef cnp.ndarray ha = None if has is None else np.ascontiguousarray(has, dtype=np.uint8)
    if s.dtype != np.float64 or s.ndim != 2 or not s.flags.c_contiguous or not s.flags.writeable \
            or (ha is not None and (ha.ndim != 1 or ha.shape[0] != s.shape[1])) \
            or (ba is not None and (ba.ndim != 1 or ba.shape[0] > s.shape[1])):
        raise ValueError("scores_classify: s must be writable contiguous float64 [N, K], base [<= K], has [K]")
    cdef int64_t n = s.shape[0], k = s.shape[1]
    cdef cnp.ndarray best = np.empty(n, dtype=np.int64)
    cdef cnp.ndarray out = np.empty((n, k), dtype=np.float32)
    cdef const uint8_t * hp = NULL
    cdef const double * bp = NULL
    cdef int64_t n_base = 0
    if ha is not None:
        hp = <const uint8_t *> cnp.PyArray_DATA(ha)
    if ba is not None:
        bp, n_base = <const double *> cnp.PyArray_DATA(ba), ba.shape[0]
    cdef int status
    with nogil:
        status = ggonnx_scores_classify(<double *> cnp.PyArray_DATA(s), n, k, bp, n_base, hp, compare_f32, post,
                                        <int64_t *> cnp.PyArray_DATA(best), <float *> cnp.PyArray_DATA(out))
    if status != 0:
        raise ValueError(f"scores_classify: unknown post transform {post}")
    return best, out


cdef class TreeWalk:
    """A forest's walk (host_trees.c), its arrays checked and converted once: ``leaves(x)`` per
    run then only checks x (a batch-1 call went from ~11 to ~2 us). Nodes: ``left`` child index
    (a leaf points at itself), ``feat``, threshold ``thr`` (float32 or float64), ``is_leaf``;
    trees start at ``roots`` (ascending, the first 0); every branch tested by ``mode`` (0 <=,
    1 <, 2 >=, 3 >); walks stop after ``max_steps``."""
    cdef cnp.ndarray roots, left, feat, thr, is_leaf, w, target
    cdef int64_t k
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
        """[N, trees] int64 leaf of each sample of x [N, C] in each tree, or None where x holds a
        NaN (the walk's tests assume none); big batches split the trees between up to
        ``threads`` threads."""
        cdef cnp.ndarray xa = np.ascontiguousarray(x, dtype=self.thr.dtype)
        if xa.ndim != 2 or xa.shape[1] < self.n_feat:
            raise ValueError(f"TreeWalk: input {np.shape(x)} must be [N, >= {self.n_feat}]")
        cdef int64_t n = xa.shape[0], c = xa.shape[1], n_trees = self.roots.shape[0]
        cdef int64_t i
        cdef bint has_nan = False
        cdef const float * xf
        cdef const double * xd
        if self.thr.dtype == np.float32:  # here rather than np.isnan(x).any(): 1 us at batch 1
            xf = <const float *> cnp.PyArray_DATA(xa)
            with nogil:
                for i in range(n * c):
                    if xf[i] != xf[i]:
                        has_nan = True
                        break
        else:
            xd = <const double *> cnp.PyArray_DATA(xa)
            with nogil:
                for i in range(n * c):
                    if xd[i] != xd[i]:
                        has_nan = True
                        break
        if has_nan:
            return None
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

    def set_weights(self, w, target=None, int64_t k=0):
        """The leaf weights ``sums`` adds, checked once: w [nodes, K] float64; or, with ``target``
        (int64 [trees] in [0, k)), w [nodes] where tree t weighs only target t of k."""
        w = np.ascontiguousarray(w, dtype=np.float64)
        if target is None:
            if w.ndim != 2 or w.shape[0] != self.left.shape[0]:
                raise ValueError("TreeWalk.set_weights: w must be [nodes, K]")
            self.k = w.shape[1]
        else:
            target = np.ascontiguousarray(target, dtype=np.int64)
            if w.ndim != 1 or w.shape[0] != self.left.shape[0] or target.ndim != 1 \
                    or target.shape[0] != self.roots.shape[0] or k < 1 \
                    or (target.shape[0] and (target.min() < 0 or target.max() >= k)):
                raise ValueError("TreeWalk.set_weights: w must be [nodes] and target [trees] in [0, k)")
            self.k = k
        self.w, self.target = w, target

    def sums(self, x, int threads=1):
        """[N, K] float64: for each sample of x the sum, tree by tree, of the weights (set_weights)
        of the leaves it reaches: the walk and the sum in one call. None where x holds a NaN."""
        if self.w is None:
            raise ValueError("TreeWalk.sums: no weights set")
        cdef cnp.ndarray lv = self.leaves(x, threads)
        if lv is None:
            return None
        cdef cnp.ndarray out = np.empty((lv.shape[0], self.k), dtype=np.float64)
        if self.target is None:
            with nogil:
                ggonnx_tree_sum(<const double *> cnp.PyArray_DATA(self.w), self.k,
                                <const int64_t *> cnp.PyArray_DATA(lv), lv.shape[0], lv.shape[1],
                                <double *> cnp.PyArray_DATA(out))
        else:
            with nogil:
                ggonnx_tree_sum_targets(<const double *> cnp.PyArray_DATA(self.w),
                                        <const int64_t *> cnp.PyArray_DATA(self.target), self.k,
                                        <const int64_t *> cnp.PyArray_DATA(lv), lv.shape[0], lv.shape[1],
                                        <double *> cnp.PyArray_DATA(out))
        return out


# float32 holds every integer of magnitude up to this exactly
EXACT_INT_F32 = 1 << 24


def ints_as_exact_f32(a):
    """Integers a (int64 or int32) as float32 of the same values in one pass, or None where
    one of them is beyond float32's exact range (|v| > 2**24): how ggml holds run-time integers
    it only moves and compares."""
    cdef cnp.ndarray src = np.ascontiguousarray(a)
    cdef cnp.ndarray out = np.empty(np.shape(a), dtype=np.float32)
    cdef int64_t i, n = src.size
    cdef const int64_t * p64
    cdef const int32_t * p32
    cdef float * o = <float *> cnp.PyArray_DATA(out)
    cdef bint ok = True
    if src.dtype == np.int64:
        p64 = <const int64_t *> cnp.PyArray_DATA(src)
        with nogil:
            for i in range(n):
                if p64[i] > 16777216 or p64[i] < -16777216:
                    ok = False
                    break
                o[i] = <float> p64[i]
    elif src.dtype == np.int32:
        p32 = <const int32_t *> cnp.PyArray_DATA(src)
        with nogil:
            for i in range(n):
                if p32[i] > 16777216 or p32[i] < -16777216:
                    ok = False
                    break
                o[i] = <float> p32[i]
    else:
        raise ValueError(f"ints_as_exact_f32: int64 or int32, not {src.dtype}")
    return out if ok else None


def top_k_rows(x, int64_t k, bint largest):
    """(values, int64 indices) [..., k] of the k extreme values along the last axis of x
    (float32, float64, int64 or int32), best first, ties by lower index, NaN the largest
    (host_topk.c). None for other dtypes."""
    cdef cnp.ndarray xa = np.ascontiguousarray(x)
    if xa.ndim < 1 or xa.dtype not in (np.float32, np.float64, np.int64, np.int32):
        return None
    cdef int64_t m = xa.shape[xa.ndim - 1]
    if not 0 <= k <= m:
        raise ValueError(f"top_k_rows: k = {k} outside [0, {m}]")
    cdef int64_t n = xa.size // m if m else 0
    shape = np.shape(xa)[:-1] + (k,)
    cdef cnp.ndarray values = np.empty(shape, dtype=xa.dtype)
    cdef cnp.ndarray indices = np.empty(shape, dtype=np.int64)
    cdef void * src = cnp.PyArray_DATA(xa)
    cdef void * dst = cnp.PyArray_DATA(values)
    cdef int64_t * idx = <int64_t *> cnp.PyArray_DATA(indices)
    if k == 0 or n == 0:
        return values, indices
    if xa.dtype == np.float32:
        with nogil:
            ggonnx_topk_f32(<const float *> src, n, m, k, largest, <float *> dst, idx)
    elif xa.dtype == np.float64:
        with nogil:
            ggonnx_topk_f64(<const double *> src, n, m, k, largest, <double *> dst, idx)
    elif xa.dtype == np.int64:
        with nogil:
            ggonnx_topk_i64(<const int64_t *> src, n, m, k, largest, <int64_t *> dst, idx)
    else:
        with nogil:
            ggonnx_topk_i32(<const int32_t *> src, n, m, k, largest, <int32_t *> dst, idx)
    return values, indices
