/* Tree-ensemble walks for the host ML kernels (host_ml.py): each sample down each tree in a
 * tight loop, where the numpy walk did a dozen whole-array passes per level (a 100-tree random
 * forest over 1,000 samples: 13 ms against onnxruntime's 3.6).
 *
 * The forest is laid out by host_ml._Forest, tree after tree from roots[t]: a branch's true
 * child at left[i], its false child at left[i] + 1; every branch has the same test (mode: 0 <=,
 * 1 <, 2 >=, 3 >), and the inputs hold no NaN (the caller checks both), so a step is
 * left[i] + !(x test thr[i]). Trees are walked one at a time for all samples, so a tree's nodes
 * stay in cache (5.0 ms for that forest where sample by sample through all trees took 7.1;
 * packing each tree's nodes into one array of structs first was slower, 6.5-7.2). Big batches
 * split the trees between threads (each writes its own columns of out). */
#include "host_trees.h"

#include <pthread.h>

/* Walks of TREE_LANES trees at once for each sample, in lockstep: one tree's walk is a chain of
 * dependent loads ending at an unpredictable depth, so walked alone each step waits on the last
 * and each tree's end mispredicts; lanes give the core independent loads to overlap and end
 * once, when the deepest lane has (a leaf stays where it is). */
#define TREE_LANES 8
#define TREE_WALK_TEST(T, TEST)                                                                     \
    for (int64_t tg = t0; tg < t1; tg += TREE_LANES) {                                              \
        const int64_t lanes = t1 - tg < TREE_LANES ? t1 - tg : TREE_LANES;                          \
        for (int64_t s = 0; s < n; ++s) {                                                           \
            const T * row = x + s * c;                                                              \
            int64_t cur[TREE_LANES];                                                                \
            for (int64_t l = 0; l < lanes; ++l) {                                                   \
                cur[l] = roots[tg + l];                                                             \
            }                                                                                       \
            for (int64_t k = 0; k < max_steps; ++k) {                                               \
                int active = 0;                                                                     \
                for (int64_t l = 0; l < lanes; ++l) {                                               \
                    const int64_t i = cur[l];                                                       \
                    const T v = row[feat[i]], h = thr[i];                                           \
                    const int64_t next = left[i] + !(TEST);                                         \
                    const int leaf = is_leaf[i];                                                    \
                    cur[l] = leaf ? i : next;                                                       \
                    active |= !leaf;                                                                \
                }                                                                                   \
                if (!active) break;                                                                 \
            }                                                                                       \
            for (int64_t l = 0; l < lanes; ++l) {                                                   \
                out[s * n_trees + tg + l] = cur[l];                                                 \
            }                                                                                       \
        }                                                                                           \
    }

/* below this many walks one thread does it all: starting threads costs more */
#define TREE_WALKS_PER_THREAD 16384

#define TREE_WALK(NAME, T)                                                                          \
struct NAME##_job {                                                                                 \
    const T * x; int64_t n, c; const int64_t * roots; int64_t n_trees, t0, t1;                      \
    const int64_t * left, * feat; const T * thr; const uint8_t * is_leaf;                           \
    int mode; int64_t max_steps; int64_t * out;                                                     \
};                                                                                                  \
static void * NAME##_run(void * arg) {                                                              \
    const struct NAME##_job * j = (const struct NAME##_job *) arg;                                  \
    const T * x = j->x; const int64_t n = j->n, c = j->c, n_trees = j->n_trees, t0 = j->t0, t1 = j->t1; \
    const int64_t * roots = j->roots, * left = j->left, * feat = j->feat; const T * thr = j->thr;   \
    const uint8_t * is_leaf = j->is_leaf; const int64_t max_steps = j->max_steps; int64_t * out = j->out; \
    switch (j->mode) {  /* one loop per test: no choice inside the walk */                          \
        case 0: TREE_WALK_TEST(T, v <= h) break;                                                    \
        case 1: TREE_WALK_TEST(T, v < h) break;                                                     \
        case 2: TREE_WALK_TEST(T, v >= h) break;                                                    \
        default: TREE_WALK_TEST(T, v > h) break;                                                    \
    }                                                                                               \
    return NULL;                                                                                    \
}                                                                                                   \
int NAME(const T * x, int64_t n, int64_t c, const int64_t * roots, int64_t n_trees,                 \
         const int64_t * left, const int64_t * feat, const T * thr, const uint8_t * is_leaf,        \
         int mode, int64_t max_steps, int n_threads, int64_t * out) {                               \
    if (mode < 0 || mode > 3) return -1;                                                            \
    struct NAME##_job jobs[GGONNX_TREE_MAX_THREADS];                                                \
    pthread_t tids[GGONNX_TREE_MAX_THREADS];                                                        \
    int64_t nt = n * n_trees / TREE_WALKS_PER_THREAD;                                               \
    if (nt > n_threads) nt = n_threads;                                                             \
    if (nt > n_trees) nt = n_trees;                                                                 \
    if (nt > GGONNX_TREE_MAX_THREADS) nt = GGONNX_TREE_MAX_THREADS;                                 \
    if (nt < 1) nt = 1;                                                                             \
    int started = 0;                                                                                \
    for (int64_t i = 0; i < nt; ++i) {                                                              \
        struct NAME##_job j = { x, n, c, roots, n_trees, n_trees * i / nt, n_trees * (i + 1) / nt,  \
                                left, feat, thr, is_leaf, mode, max_steps, out };                   \
        jobs[i] = j;                                                                                \
    }                                                                                               \
    for (int64_t i = 1; i < nt; ++i) {  /* a thread that cannot start leaves its trees to this one */ \
        if (pthread_create(&tids[i], NULL, NAME##_run, &jobs[i]) != 0) {                            \
            for (int64_t k = i; k < nt; ++k) NAME##_run(&jobs[k]);                                  \
            break;                                                                                  \
        }                                                                                           \
        started = (int) i;                                                                          \
    }                                                                                               \
    NAME##_run(&jobs[0]);                                                                           \
    for (int i = 1; i <= started; ++i) pthread_join(tids[i], NULL);                                 \
    return 0;                                                                                       \
}

TREE_WALK(ggonnx_tree_leaves_f32, float)
TREE_WALK(ggonnx_tree_leaves_f64, double)

/* Blocks of TREE_SUM_BLOCK samples, tree after tree within a block: consecutive adds go to
 * different samples' sums (summed sample by sample, each add waited on the one before: 300 trees
 * x 3 classes x 1,000 samples took 844 us, latency bound), and the block's rows of leaves stay
 * in cache. Each sample's sum still runs in tree order. */
#define TREE_SUM_BLOCK 16
void ggonnx_tree_sum(const double * w, int64_t k, const int64_t * leaves, int64_t n, int64_t n_trees, double * out) {
    for (int64_t i = 0; i < n * k; ++i) {
        out[i] = 0.0;
    }
    for (int64_t s0 = 0; s0 < n; s0 += TREE_SUM_BLOCK) {
        const int64_t s1 = s0 + TREE_SUM_BLOCK < n ? s0 + TREE_SUM_BLOCK : n;
        for (int64_t t = 0; t < n_trees; ++t) {
            for (int64_t s = s0; s < s1; ++s) {
                const double * row = w + leaves[s * n_trees + t] * k;
                double * o = out + s * k;
                for (int64_t j = 0; j < k; ++j) {
                    o[j] += row[j];
                }
            }
        }
    }
}

/* ggonnx_tree_sum for forests whose trees each weigh one target: one add per tree, not k */
void ggonnx_tree_sum_targets(const double * w, const int64_t * target, int64_t k, const int64_t * leaves, int64_t n,
                             int64_t n_trees, double * out) {
    for (int64_t i = 0; i < n * k; ++i) {
        out[i] = 0.0;
    }
    for (int64_t s0 = 0; s0 < n; s0 += TREE_SUM_BLOCK) {
        const int64_t s1 = s0 + TREE_SUM_BLOCK < n ? s0 + TREE_SUM_BLOCK : n;
        for (int64_t t = 0; t < n_trees; ++t) {
            const int64_t j = target[t];
            for (int64_t s = s0; s < s1; ++s) {
                out[s * k + j] += w[leaves[s * n_trees + t]];
            }
        }
    }
}
