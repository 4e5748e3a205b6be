/* SIMD helpers and the GEMM epilogue shared by the custom-op kernels (16-lane float vectors,
 * GCC/Clang vector extensions; AVX-512 where compiled for it). Include after kernels.h and
 * kernels_util.h, in a file that turns floating-point contraction on (see kernels.c). */
#pragma once
#include <math.h>
#include <string.h>
#if !defined(__AVX512F__) && defined(__AVX2__) && defined(__FMA__)
#define GGONNX_AVX2 1   /* 256-bit halves in intrinsics where GCC's lowering of v16 is scalar */
#endif
#if defined(__AVX512F__) || defined(GGONNX_AVX2)
#include <immintrin.h>
#endif

typedef float v16 __attribute__((vector_size(64), aligned(4)));
typedef int32_t vi16 __attribute__((vector_size(64), aligned(4)));

#ifdef __AVX512F__
#define SPLAT(s) ((v16){ s, s, s, s, s, s, s, s, s, s, s, s, s, s, s, s })
#else   /* a broadcast, not 16 inserts into a stack slot (which then stalls the 256-bit loads) */
#define SPLAT(s) ((v16){} + (float) (s))
#endif

#ifdef GGONNX_AVX2
/* Without AVX-512, GCC splits a v16's arithmetic into 256-bit halves but compares lane by lane
 * in scalar code (a Relu6 epilogue cost more than its GEMM on an AVX2 Zen 2): comparisons and
 * selects go through the halves. */
static inline void halves16(v16 v, __m256 * lo, __m256 * hi) {
    float b[16];
    memcpy(b, &v, sizeof(v));
    *lo = _mm256_loadu_ps(b);
    *hi = _mm256_loadu_ps(b + 8);
}

static inline v16 join16(__m256 lo, __m256 hi) {
    float b[16];
    v16 v;
    _mm256_storeu_ps(b, lo);
    _mm256_storeu_ps(b + 8, hi);
    memcpy(&v, b, sizeof(v));
    return v;
}

/* lanes where a < b (ordered: false where either is NaN), as a mask of all-ones lanes */
static inline vi16 lt16(v16 a, v16 b) {
    __m256 a0, a1, b0, b1;
    halves16(a, &a0, &a1);
    halves16(b, &b0, &b1);
    return (vi16) join16(_mm256_cmp_ps(a0, b0, _CMP_LT_OQ), _mm256_cmp_ps(a1, b1, _CMP_LT_OQ));
}

/* where(mask, a, b) for a lane mask from lt16 */
static inline v16 select16(vi16 mask, v16 a, v16 b) {
    __m256 a0, a1, b0, b1, m0, m1;
    halves16(a, &a0, &a1);
    halves16(b, &b0, &b1);
    halves16((v16) mask, &m0, &m1);
    return join16(_mm256_blendv_ps(b0, a0, m0), _mm256_blendv_ps(b1, a1, m1));
}
#else
static inline vi16 lt16(v16 a, v16 b) {
    return a < b;
}

/* where(mask, a, b) for a lane mask from a vector comparison (C has no vector ?:) */
static inline v16 select16(vi16 mask, v16 a, v16 b) {
    return (v16) (((vi16) a & mask) | ((vi16) b & ~mask));
}
#endif
#define PANEL GGONNX_GEMM_PANEL
#define NR 12   /* pixels per micro-tile */

struct epilogue {
    const float * bias;       /* NULL: none */
    const float * residual;   /* added before the activation, laid out as the output; NULL: none */
    const float * y;          /* the output's start: a residual element sits at the same offset */
    int act;
    float lo, hi;
    int stream;               /* finished full panels go to memory past the caches (AVX2, AVX-512) */
};

/* Store the first n floats of v (n <= 16). A memcpy of a run-time length becomes `rep movs`
 * and a store-forwarding stall (resnet50 b8's residual epilogue spent 12% of the model there):
 * AVX-512 masks the lanes instead. */
static inline void store_n(float * dst, v16 v, int64_t n) {
#ifdef __AVX512F__
    _mm512_mask_storeu_ps(dst, (__mmask16) ((1u << n) - 1), (__m512) v);
#else
    if (n == 16) {
        memcpy(dst, &v, sizeof(v));
    } else {
        float tmp[16];
        memcpy(tmp, &v, sizeof(v));
        memcpy(dst, tmp, n * sizeof(float));
    }
#endif
}

/* store_n, but a full 64-byte-aligned vector (one cache line) goes to memory past the caches,
 * sparing the read for ownership of the line (AVX-512; elsewhere a plain store_n) */
static inline void store_n_streamed(float * dst, v16 v, int64_t n) {
#ifdef __AVX512F__
    if (n == 16 && ((uintptr_t) dst & 63) == 0) {
        _mm512_stream_ps(dst, (__m512) v);
        return;
    }
#endif
    store_n(dst, v, n);
}

static inline v16 clamp16(v16 x, v16 lo, v16 hi) {
    x = select16(lt16(x, lo), lo, x);
    return select16(lt16(hi, x), hi, x);
}

/* exp(x) to about 1 ulp: x = n ln2 + r with |r| <= ln2 / 2, exp(r) by its degree-6 Taylor
 * polynomial (error below 1.2e-7 relative), 2^n through the exponent bits. x is clamped to
 * [-87.3, 88.3] so that n stays a normal exponent; NaN stays NaN. */
static inline v16 exp16(v16 x) {
    x = clamp16(x, SPLAT(-87.3f), SPLAT(88.3f));
    const v16 magic = SPLAT(12582912.0f);              /* 1.5 * 2^23: adding it rounds to an integer */
    const v16 t = x * SPLAT(1.44269504f) + magic;
    const v16 n = t - magic;
    const v16 r = (x - n * SPLAT(0.693145752f)) - n * SPLAT(1.42860677e-6f);   /* ln2 in two parts */
    v16 p = SPLAT(1.0f / 720.0f);
    p = p * r + SPLAT(1.0f / 120.0f);
    p = p * r + SPLAT(1.0f / 24.0f);
    p = p * r + SPLAT(1.0f / 6.0f);
    p = p * r + SPLAT(0.5f);
    p = p * r + SPLAT(1.0f);
    p = p * r + SPLAT(1.0f);
    const vi16 bits = ((vi16) t - (vi16) magic + 127) << 23;   /* the integer n, as 2^n */
    return p * (v16) bits;
}

/* Exactly 0 below -88.3 (where exp16 clamps), as for -inf: silu(-inf) is then NaN, as in numpy. */
static inline v16 sigmoid16(v16 x) {
    return select16(lt16(x, SPLAT(-88.3f)), SPLAT(0.0f), SPLAT(1.0f) / (SPLAT(1.0f) + exp16(-x)));
}

#ifdef GGONNX_AVX2
/* The epilogue's functions on 8 lanes, the same formulas as the 16-lane ones below. */
#define SET8(s) _mm256_set1_ps(s)

/* max(lo, min(hi, x)), NaN kept (max_ps / min_ps return their second operand on NaN) */
static inline __m256 clamp8(__m256 x, float lo, float hi) {
    return _mm256_min_ps(SET8(hi), _mm256_max_ps(SET8(lo), x));
}

static inline __m256 exp8(__m256 x) {
    x = clamp8(x, -87.3f, 88.3f);
    const __m256 magic = SET8(12582912.0f);
    const __m256 t = _mm256_fmadd_ps(x, SET8(1.44269504f), magic);
    const __m256 n = _mm256_sub_ps(t, magic);
    const __m256 r = _mm256_fnmadd_ps(n, SET8(1.42860677e-6f), _mm256_fnmadd_ps(n, SET8(0.693145752f), x));
    __m256 p = SET8(1.0f / 720.0f);
    p = _mm256_fmadd_ps(p, r, SET8(1.0f / 120.0f));
    p = _mm256_fmadd_ps(p, r, SET8(1.0f / 24.0f));
    p = _mm256_fmadd_ps(p, r, SET8(1.0f / 6.0f));
    p = _mm256_fmadd_ps(p, r, SET8(0.5f));
    p = _mm256_fmadd_ps(p, r, SET8(1.0f));
    p = _mm256_fmadd_ps(p, r, SET8(1.0f));
    const __m256i bits = _mm256_slli_epi32(_mm256_add_epi32(_mm256_sub_epi32(_mm256_castps_si256(t),
                                                                              _mm256_castps_si256(magic)),
                                                             _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(bits));
}

static inline __m256 sigmoid8(__m256 x) {
    const __m256 s = _mm256_div_ps(SET8(1.0f), _mm256_add_ps(SET8(1.0f), exp8(_mm256_sub_ps(SET8(0.0f), x))));
    return _mm256_blendv_ps(s, SET8(0.0f), _mm256_cmp_ps(x, SET8(-88.3f), _CMP_LT_OQ));
}

/* The activations activate8 does not inline (GCC calls this rather than inline it) */
static inline __m256 activate8_other(__m256 acc, int act, float lo, float hi) {
    if (act == GGONNX_ACT_HARDSIGMOID) {
        return clamp8(_mm256_fmadd_ps(acc, SET8(lo), SET8(hi)), 0.0f, 1.0f);
    }
    if (act == GGONNX_ACT_SIGMOID) {
        return sigmoid8(acc);
    }
    if (act == GGONNX_ACT_ROUND) {
        const __m256 magic = SET8(12582912.0f);
        const __m256 y = clamp8(acc, lo - 1.0f, hi + 1.0f);
        return clamp8(_mm256_sub_ps(_mm256_add_ps(y, magic), magic), lo, hi);
    }
    if (act == GGONNX_ACT_GELU_ERF) {
        const __m256 z = _mm256_mul_ps(acc, SET8(-0.70710678f));
        const __m256 neg = _mm256_cmp_ps(z, SET8(0.0f), _CMP_LT_OQ);
        const __m256 a = _mm256_blendv_ps(z, _mm256_sub_ps(SET8(0.0f), z), neg);
        const __m256 t = _mm256_div_ps(SET8(1.0f), _mm256_fmadd_ps(SET8(0.5f), a, SET8(1.0f)));
        __m256 p = SET8(0.17087277f);
        p = _mm256_fmadd_ps(p, t, SET8(-0.82215223f));
        p = _mm256_fmadd_ps(p, t, SET8(1.48851587f));
        p = _mm256_fmadd_ps(p, t, SET8(-1.13520398f));
        p = _mm256_fmadd_ps(p, t, SET8(0.27886807f));
        p = _mm256_fmadd_ps(p, t, SET8(-0.18628806f));
        p = _mm256_fmadd_ps(p, t, SET8(0.09678418f));
        p = _mm256_fmadd_ps(p, t, SET8(0.37409196f));
        p = _mm256_fmadd_ps(p, t, SET8(1.00002368f));
        p = _mm256_fmadd_ps(p, t, SET8(-1.26551223f));
        const __m256 erfc_a = _mm256_mul_ps(t, exp8(_mm256_fnmadd_ps(a, a, p)));
        return _mm256_mul_ps(_mm256_mul_ps(SET8(0.5f), acc),
                             _mm256_blendv_ps(erfc_a, _mm256_sub_ps(SET8(2.0f), erfc_a), neg));
    }
    if (act == GGONNX_ACT_GELU_TANH) {
        const __m256 c = _mm256_mul_ps(_mm256_mul_ps(SET8(0.044715f), acc), acc);
        return _mm256_mul_ps(acc, sigmoid8(_mm256_mul_ps(SET8(1.5957691216f), _mm256_fmadd_ps(c, acc, acc))));
    }
    return acc;
}

/* The activations of conv nets inline (none, clamp: Relu, Relu6; HardSwish; SiLU): an out-of-line
 * call per vector spills every live register (a depthwise conv's weights) and cost it 8%. */
#define ACT8_INLINE(act) ((act) == GGONNX_ACT_NONE || (act) == GGONNX_ACT_CLAMP || \
                          (act) == GGONNX_ACT_HARDSWISH || (act) == GGONNX_ACT_SILU)
static inline __attribute__((always_inline)) __m256 activate8(__m256 acc, int act, float lo, float hi) {
    if (act == GGONNX_ACT_NONE) {
        return acc;
    }
    if (act == GGONNX_ACT_CLAMP) {
        return clamp8(acc, lo, hi);
    }
    if (act == GGONNX_ACT_HARDSWISH) {
        return _mm256_mul_ps(acc, clamp8(_mm256_fmadd_ps(acc, SET8(1.0f / 6.0f), SET8(0.5f)), 0.0f, 1.0f));
    }
    if (act == GGONNX_ACT_SILU) {
        return _mm256_mul_ps(acc, sigmoid8(acc));
    }
    return activate8_other(acc, act, lo, hi);
}
#endif

/* activate() past none and clamp: out of line, so the tiles and depthwise rows that inline
 * activate() keep the common cases in registers without carrying every formula */
static __attribute__((noinline, unused)) v16 activate_other(v16 acc, int act, float lo, float hi) {
    if (act == GGONNX_ACT_HARDSWISH) {
        return acc * clamp16(acc * SPLAT(1.0f / 6.0f) + SPLAT(0.5f), SPLAT(0.0f), SPLAT(1.0f));
    }
    if (act == GGONNX_ACT_HARDSIGMOID) {
        return clamp16(acc * SPLAT(lo) + SPLAT(hi), SPLAT(0.0f), SPLAT(1.0f));
    }
    if (act == GGONNX_ACT_SIGMOID) {
        return sigmoid16(acc);
    }
    if (act == GGONNX_ACT_ROUND) {
        /* adding and taking away 1.5 * 2^23 rounds to the nearest integer, ties to even, in the
         * default rounding mode; clamped first so the trick's range (2^22) holds */
        const v16 magic = SPLAT(12582912.0f);
        const v16 y = clamp16(acc, SPLAT(lo - 1.0f), SPLAT(hi + 1.0f));
        return clamp16((y + magic) - magic, SPLAT(lo), SPLAT(hi));
    }
    if (act == GGONNX_ACT_SILU) {
        return acc * sigmoid16(acc);
    }
    if (act == GGONNX_ACT_GELU_ERF) {
        /* 0.5 x (1 + erf(x / sqrt 2)) = 0.5 x erfc(-x / sqrt 2): erfc by a Chebyshev fit of
         * fractional error below 1.2e-7 everywhere (Numerical Recipes' erfcc), so the negative
         * tail, where 1 + erf cancels, stays accurate: measured 1.2e-6 relative where
         * |gelu| > 1e-3, 1.4e-5 in the far tail (exp of a rounded -a^2); ggml's erff is scalar */
        const v16 z = acc * SPLAT(-0.70710678f);
        const v16 a = select16(lt16(z, SPLAT(0.0f)), -z, z);
        const v16 t = SPLAT(1.0f) / (SPLAT(1.0f) + SPLAT(0.5f) * a);
        v16 p = SPLAT(0.17087277f);
        p = p * t + SPLAT(-0.82215223f);
        p = p * t + SPLAT(1.48851587f);
        p = p * t + SPLAT(-1.13520398f);
        p = p * t + SPLAT(0.27886807f);
        p = p * t + SPLAT(-0.18628806f);
        p = p * t + SPLAT(0.09678418f);
        p = p * t + SPLAT(0.37409196f);
        p = p * t + SPLAT(1.00002368f);
        p = p * t + SPLAT(-1.26551223f);
        const v16 erfc_a = t * exp16(p - a * a);
        return SPLAT(0.5f) * acc * select16(lt16(z, SPLAT(0.0f)), SPLAT(2.0f) - erfc_a, erfc_a);
    }
    if (act == GGONNX_ACT_GELU_TANH) {   /* 0.5 x (1 + tanh(z)) = x sigmoid(2 z) */
        const v16 z2 = SPLAT(1.5957691216f) * (acc + SPLAT(0.044715f) * acc * acc * acc);
        return acc * sigmoid16(z2);
    }
    return acc;
}

/* The activation of an epilogue (kernels.h: GGONNX_ACT_*); lo, hi are its two parameters. */
static inline __attribute__((always_inline)) v16 activate(v16 acc, int act, float lo, float hi) {
    if (act == GGONNX_ACT_NONE) {
        return acc;
    }
#ifdef GGONNX_AVX2
    __m256 a0, a1;
    halves16(acc, &a0, &a1);
    return join16(activate8(a0, act, lo, hi), activate8(a1, act, lo, hi));
#else
    if (act == GGONNX_ACT_CLAMP) {
        return clamp16(acc, SPLAT(lo), SPLAT(hi));
    }
    return activate_other(acc, act, lo, hi);
#endif
}

/* The sum of v's lanes, first to last. */
static inline float hsum16(v16 v) {
    float s = 0.0f;
    for (int k = 0; k < 16; ++k) {
        s += v[k];
    }
    return s;
}

/* The first n (<= 16) floats at src, the rest zero; nothing past them is read. */
static inline v16 load_n(const float * src, int64_t n) {
#ifdef __AVX512F__
    return (v16) _mm512_maskz_loadu_ps((__mmask16) ((1u << n) - 1), src);
#else
    v16 v = {};
    memcpy(&v, src, n * sizeof(float));
    return v;
#endif
}

/* The epilogue of the n (<= 16) outputs at y (output channel o0 on). */
static inline __attribute__((always_inline)) v16 finish(v16 acc, const struct epilogue * ep, int64_t o0,
                                                      const float * y, int64_t n) {
    if (ep->bias) {
        v16 b;
        memcpy(&b, ep->bias + o0, sizeof(b));
        acc += b;
    }
    if (ep->residual) {
        acc += load_n(ep->residual + (y - ep->y), n);
    }
    return activate(acc, ep->act, ep->lo, ep->hi);
}

#ifdef GGONNX_AVX2
/* The first n (<= 8) floats at src, the rest zero; nothing past them is read. */
static inline __m256 load8_n(const float * src, int64_t n) {
    if (n == 8) {
        return _mm256_loadu_ps(src);
    }
    const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_maskload_ps(src, _mm256_cmpgt_epi32(_mm256_set1_epi32((int) n), lanes));
}

/* Store the first n (<= 8) lanes of v. */
static inline void store8_n(float * dst, __m256 v, int64_t n) {
    if (n == 8) {
        _mm256_storeu_ps(dst, v);
    } else {
        float b[8];
        _mm256_storeu_ps(b, v);
        memcpy(dst, b, n * sizeof(float));
    }
}

/* finish() for 8 outputs (o0 on, n <= 8 of them valid) */
static inline __m256 finish8(__m256 acc, const struct epilogue * ep, int64_t o0, const float * y, int64_t n) {
    if (ep->bias) {
        acc = _mm256_add_ps(acc, _mm256_loadu_ps(ep->bias + o0));   /* padded to whole panels */
    }
    if (ep->residual) {
        acc = _mm256_add_ps(acc, load8_n(ep->residual + (y - ep->y), n));
    }
    return activate8(acc, ep->act, ep->lo, ep->hi);
}
#endif

