# cython: language_level=3
# distutils: language = c++
"""Which of this build's CPU variants the running CPU can execute: ggml's own scores (its
cpu-feats code), compiled for the baseline instruction set so that asking never faults."""

cdef extern from "cpu_variants.h":
    ctypedef int (*ggonnx_score_fn)()
    ctypedef struct ggonnx_cpu_variant:
        const char * name
        ggonnx_score_fn score
    const ggonnx_cpu_variant ggonnx_cpu_variants[]
    const int ggonnx_n_cpu_variants


def scores() -> list:
    """[(variant, ggml score)] in the build's order, best first; score 0 = not runnable here.
    A native build's one variant has no score function: it runs where it was built (score 1)."""
    out = []
    for k in range(ggonnx_n_cpu_variants):
        v = ggonnx_cpu_variants[k]
        out.append((v.name.decode(), v.score() if v.score != NULL else 1))
    return out
