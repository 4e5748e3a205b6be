/* bf16 weights on AMX tiles (Sapphire Rapids and later): dst [N, M] = W [N, K] x X [K, M].
 *
 * ggml has AMX kernels for its int8 block types only; its bf16 matmul runs AVX512-BF16 dot
 * products (vdpbf16ps, one a cycle), which on these CPUs is no faster than float32 FMAs on two
 * ports. One TDPBF16PS multiplies a 16x32 bf16 tile by a 32x16 one. Built where the compiler
 * targets AMX (a native build on such a CPU); elsewhere ggonnx_amx_bf16_init() says no and the
 * planner keeps ggml's bf16 matmul. */
#include "kernels.h"
#include "kernels_util.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__AMX_TILE__) && defined(__AMX_BF16__) && defined(__AVX512BF16__) && defined(__linux__)
#include <cpuid.h>
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>

#define ARCH_REQ_XCOMP_PERM 0x1023
#define XFEATURE_XTILEDATA 18

/* Every tile 16 rows of 64 bytes: C tiles 0-3 (16x16 float), A tiles 4-5 (16 rows x 32 bf16),
 * B tiles 6-7 (16 depth pairs x 16 outputs x 2). A constant: GCC 12 dropped the stores of a
 * stack-built config before ldtilecfg (see vendor/ggml/patches/0002). */
struct amx_tilecfg {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
};
static const struct amx_tilecfg AMX_CFG __attribute__((aligned(64))) = {
    .palette = 1,
    .colsb = {64, 64, 64, 64, 64, 64, 64, 64},
    .rows = {16, 16, 16, 16, 16, 16, 16, 16},
};

int ggonnx_amx_bf16_init(void) {
    static int state = -1;   /* the same answer for every caller; the permission is per process */
    if (state < 0) {
        unsigned a, b, c, d;
        int ok = __get_cpuid_count(7, 0, &a, &b, &c, &d) && ((d >> 22) & 1) && ((d >> 24) & 1);
        state = ok && syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0;
    }
    return state;
}

/* One thread's bf16 copy of row blocks of X (32 rows each), each row padded with zeros to kp;
 * rows past M zero. */
static _Thread_local uint16_t * a_rows;
static _Thread_local int64_t a_cap;

/* Row blocks [mb0, mb1) of X into a_rows, block after block. */
static int convert_rows(const float * x, int64_t k, int64_t kp, int64_t mb0, int64_t mb1, int64_t m) {
    const int64_t need = (mb1 - mb0) * 32 * kp;
    if (a_cap < need) {
        free(a_rows);
        a_rows = aligned_alloc(64, (size_t) need * sizeof(uint16_t));
        a_cap = a_rows ? need : 0;
        if (!a_rows) {
            return 0;
        }
    }
    for (int64_t r = 0; r < (mb1 - mb0) * 32; ++r) {
        const int64_t row = mb0 * 32 + r;
        uint16_t * out = a_rows + r * kp;
        if (row >= m) {
            memset(out, 0, (size_t) kp * sizeof(uint16_t));
            continue;
        }
        const float * in = x + row * k;
        for (int64_t i = 0; i < kp; i += 16) {
            const int64_t n = k - i < 16 ? (k - i > 0 ? k - i : 0) : 16;
            const __m512 v = _mm512_maskz_loadu_ps((__mmask16) ((1u << n) - 1), in + i);
            _mm256_storeu_si256((__m256i *) (out + i), (__m256i) _mm512_cvtneps_pbh(v));  /* nearest even */
        }
    }
    return 1;
}

/* One 32x32 block of dst: rows m0.. (bf16 copies at a), outputs n0.. (the tiles at w0, w1). The
 * weight tiles of the next steps are prefetched: tile loads are not followed by the hardware
 * prefetchers. */
static void block_32x32(const uint16_t * a, const uint16_t * w0, const uint16_t * w1, int64_t kp, int64_t kb_n,
                        float * y, int64_t m, int64_t n, int64_t m0, int64_t n0) {
    float part[32 * 32];
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    for (int64_t kb = 0; kb < kb_n; ++kb) {
        if (kb + 2 < kb_n) {
            for (int off = 0; off < 512; off += 32) {   /* 1 KiB a tile, 64-byte lines */
                _mm_prefetch((const char *) (w0 + (kb + 2) * 512 + off), _MM_HINT_T0);
                _mm_prefetch((const char *) (w1 + (kb + 2) * 512 + off), _MM_HINT_T0);
            }
        }
        _tile_loadd(4, a + kb * 32, kp * 2);
        _tile_loadd(5, a + 16 * kp + kb * 32, kp * 2);
        _tile_loadd(6, w0 + kb * 512, 64);
        _tile_loadd(7, w1 + kb * 512, 64);
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(1, 4, 7);
        _tile_dpbf16ps(2, 5, 6);
        _tile_dpbf16ps(3, 5, 7);
    }
    if (m0 + 32 <= m && n0 + 32 <= n) {
        float * yb = y + m0 * n + n0;
        _tile_stored(0, yb, n * 4);
        _tile_stored(1, yb + 16, n * 4);
        _tile_stored(2, yb + 16 * n, n * 4);
        _tile_stored(3, yb + 16 * n + 16, n * 4);
    } else {   /* an edge block: through a buffer, the valid rows and outputs only */
        _tile_stored(0, part, 128);
        _tile_stored(1, part + 16, 128);
        _tile_stored(2, part + 16 * 32, 128);
        _tile_stored(3, part + 16 * 32 + 16, 128);
        const int64_t rows = MIN(32, m - m0), cols = MIN(32, n - n0);
        for (int64_t r = 0; r < rows; ++r) {
            memcpy(y + (m0 + r) * n + n0, part + r * 32, (size_t) cols * sizeof(float));
        }
    }
}

/* bf16 copies of X kept at once: enough row blocks for a few hundred KiB, in L2 with the tiles */
#define A_CHUNK_BYTES (512 * 1024)

void ggonnx_gemm_amx_bf16(struct ggml_tensor * dst, int ith, int nth, void * params) {
    (void) params;
    const uint16_t * w = (const uint16_t *) dst->src[0]->data;
    const float * x = (const float *) dst->src[1]->data;
    float * y = (float *) dst->data;
    const int64_t k = dst->src[1]->ne[0], m = dst->src[1]->ne[1], n = dst->ne[0];
    const int64_t kp = (k + 31) / 32 * 32, kb_n = kp / 32;
    const int64_t mb_n = (m + 31) / 32, nb_n = (n + 31) / 32;
    _tile_loadconfig(&AMX_CFG);
    if (nb_n < 2 * nth) {
        /* few output blocks: threads share the row blocks, each converted once */
        int64_t u0, u1;
        split(mb_n * nb_n, ith, nth, &u0, &u1);
        int64_t have = -1;
        for (int64_t u = u0; u < u1; ++u) {
            const int64_t mb = u / nb_n, nb = u % nb_n;
            if (mb != have) {
                if (!convert_rows(x, k, kp, mb, mb + 1, m)) {
                    memset(y + mb * 32 * n, 0xff, (size_t) (MIN(32, m - mb * 32) * n) * sizeof(float));  /* NaN, never silent */
                    continue;
                }
                have = mb;
            }
            const uint16_t * w0 = w + (2 * nb) * kb_n * 512;
            block_32x32(a_rows, w0, w0 + kb_n * 512, kp, kb_n, y, m, n, mb * 32, nb * 32);
        }
        _tile_release();
        return;
    }
    /* threads own runs of output blocks and go through a chunk of row blocks for each, so each
     * reads its part of the weights once a chunk (once when X fits a chunk) */
    int64_t nb0, nb1;
    split(nb_n, ith, nth, &nb0, &nb1);
    const int64_t chunk = MAX(1, A_CHUNK_BYTES / (32 * kp * (int64_t) sizeof(uint16_t)));
    for (int64_t c0 = 0; c0 < mb_n; c0 += chunk) {
        const int64_t c1 = MIN(mb_n, c0 + chunk);
        if (!convert_rows(x, k, kp, c0, c1, m)) {
            for (int64_t row = c0 * 32; row < MIN(m, c1 * 32); ++row) {   /* NaN, never silent */
                for (int64_t nb = nb0; nb < nb1; ++nb) {
                    memset(y + row * n + nb * 32, 0xff, (size_t) MIN(32, n - nb * 32) * sizeof(float));
                }
            }
            continue;
        }
        for (int64_t nb = nb0; nb < nb1; ++nb) {
            const uint16_t * w0 = w + (2 * nb) * kb_n * 512;
            for (int64_t mb = c0; mb < c1; ++mb) {
                block_32x32(a_rows + (mb - c0) * 32 * kp, w0, w0 + kb_n * 512, kp, kb_n, y, m, n, mb * 32, nb * 32);
            }
        }
    }
    _tile_release();
}

#else

int ggonnx_amx_bf16_init(void) {
    return 0;
}

void ggonnx_gemm_amx_bf16(struct ggml_tensor * dst, int ith, int nth, void * params) {
    (void) ith; (void) nth; (void) params;
    /* unreachable: the planner emits this op only where ggonnx_amx_bf16_init() said yes */
    memset(dst->data, 0xff, ggml_nbytes(dst));
}

#endif
