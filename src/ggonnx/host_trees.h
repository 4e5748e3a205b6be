/* Tree-ensemble walks for the host ML kernels (host_trees.c). */
#pragma once
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define GGONNX_TREE_MAX_THREADS 64

/* out[s, t]: the leaf sample s reaches in tree t (walked from node roots[t]), on up to n_threads
 * threads; 0, or -1 for a mode other than 0..3 */
int ggonnx_tree_leaves_f32(const float * x, int64_t n, int64_t c, const int64_t * roots, int64_t n_trees,
                           const int64_t * left, const int64_t * feat, const float * thr,
                           const uint8_t * is_leaf, int mode, int64_t max_steps, int n_threads, int64_t * out);
int ggonnx_tree_leaves_f64(const double * x, int64_t n, int64_t c, const int64_t * roots, int64_t n_trees,
                           const int64_t * left, const int64_t * feat, const double * thr,
                           const uint8_t * is_leaf, int mode, int64_t max_steps, int n_threads, int64_t * out);
/* out[s, :] = the sum over trees t of w[leaves[s, t], :] (w: [nodes, k]), in tree order */
void ggonnx_tree_sum(const double * w, int64_t k, const int64_t * leaves, int64_t n, int64_t n_trees, double * out);
/* the same where tree t weighs only target[t] (in [0, k)), by w[leaf] (w: [nodes]) */
void ggonnx_tree_sum_targets(const double * w, const int64_t * target, int64_t k, const int64_t * leaves, int64_t n,
                             int64_t n_trees, double * out);

#ifdef __cplusplus
}
#endif
