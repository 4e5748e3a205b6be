/* ONNX's RNN, GRU and LSTM, one direction at a time, with their default activations (sigmoid and
 * tanh), in 16-lane vectors. Each step computes bias + x_t W^T + h R^T over the rows of W^T and
 * R^T (each output summed in row order) and applies the gates. The projection is here rather
 * than in a numpy GEMM: OpenBLAS's threads then spun through the steps, 40% of a 100-step LSTM's
 * time. onnx.reference ran all of it in Python per step: a 100-step LSTM took 2.9 ms against
 * onnxruntime's 0.1 ms. */
#include "host_rnn.h"

/* the sums may become FMAs here (as in the other kernels; see kernels.c) */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("fp-contract=fast")
#endif

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "kernels_util.h"
#include "kernels_simd.h"

/* tanh through exp16, within a few float32 ulps of 1 in absolute terms, and its Taylor series
 * near 0 where 1 - 2 / (e + 1) cancels (glibc's tanhf goes through expm1f, scalar: a third of
 * an LSTM's time). onnxruntime's own tanh is a rational approximation of similar accuracy. */
static inline v16 tanh16(v16 x) {
    const v16 x2 = x * x;
    const v16 near0 = x * (SPLAT(1.0f) - x2 * (SPLAT(1.0f / 3.0f) - x2 * SPLAT(2.0f / 15.0f)));
    const v16 far = SPLAT(1.0f) - SPLAT(2.0f) / (exp16(SPLAT(2.0f) * x) + SPLAT(1.0f));
    return select16(lt16(x2, SPLAT(0.0625f * 0.0625f)), near0, far);
}

/* activation ``kind`` of the recurrent layers, with its alpha and beta */
static inline v16 act16(int kind, float alpha, float beta, v16 x) {
    switch (kind) {
        case GGONNX_RNN_ACT_SIGMOID: return sigmoid16(x);
        case GGONNX_RNN_ACT_TANH: return tanh16(x);
        case GGONNX_RNN_ACT_RELU: return select16(lt16(x, SPLAT(0.0f)), SPLAT(0.0f), x);
        case GGONNX_RNN_ACT_AFFINE: return SPLAT(alpha) * x + SPLAT(beta);
        case GGONNX_RNN_ACT_LEAKY_RELU: return select16(lt16(x, SPLAT(0.0f)), SPLAT(alpha) * x, x);
        case GGONNX_RNN_ACT_THRESHOLDED_RELU: return select16(lt16(SPLAT(alpha), x), x, SPLAT(0.0f));
        case GGONNX_RNN_ACT_SCALED_TANH: return SPLAT(alpha) * tanh16(SPLAT(beta) * x);
        case GGONNX_RNN_ACT_HARD_SIGMOID: return clamp16(SPLAT(alpha) * x + SPLAT(beta), SPLAT(0.0f), SPLAT(1.0f));
        case GGONNX_RNN_ACT_ELU: return select16(lt16(x, SPLAT(0.0f)), SPLAT(alpha) * (exp16(x) - SPLAT(1.0f)), x);
        case GGONNX_RNN_ACT_SOFTSIGN: {
            const v16 a = select16(lt16(x, SPLAT(0.0f)), -x, x);
            return x / (SPLAT(1.0f) + a);
        }
        default: {   /* softplus, log(1 + e^x), element by element (rare) */
            float b[16];
            memcpy(b, &x, sizeof(b));
            for (int i = 0; i < 16; ++i) {
                b[i] = b[i] > 20.0f ? b[i] : log1pf(expf(b[i]));
            }
            memcpy(&x, b, sizeof(b));
            return x;
        }
    }
}

/* g[0..count) += sum over k of h[k] * rt[k, 0..count), rt's rows ``stride`` floats apart, each sum
 * in k order. 64 outputs at a time stay in registers through all k (an axpy per k instead
 * stored and reloaded g every k: 46% of an LSTM's time). */
static void add_h_rt(float * g, const float * h, const float * rt, int64_t hidden, int64_t stride, int64_t count) {
    int64_t j = 0;
    for (; j + 64 <= count; j += 64) {
        v16 a0 = load_n(g + j, 16), a1 = load_n(g + j + 16, 16), a2 = load_n(g + j + 32, 16);
        v16 a3 = load_n(g + j + 48, 16);
        for (int64_t k = 0; k < hidden; ++k) {
            const v16 hk = SPLAT(h[k]);
            const float * row = rt + k * stride + j;
            a0 += hk * load_n(row, 16);
            a1 += hk * load_n(row + 16, 16);
            a2 += hk * load_n(row + 32, 16);
            a3 += hk * load_n(row + 48, 16);
        }
        store_n(g + j, a0, 16);
        store_n(g + j + 16, a1, 16);
        store_n(g + j + 32, a2, 16);
        store_n(g + j + 48, a3, 16);
    }
    for (; j < count; j += 16) {
        const int64_t m = MIN(16, count - j);
        v16 a = load_n(g + j, m);
        for (int64_t k = 0; k < hidden; ++k) {
            a += SPLAT(h[k]) * load_n(rt + k * stride + j, m);
        }
        store_n(g + j, a, m);
    }
}

int ggonnx_rnn_direction(int kind, const float * x, const float * wt, const float * bias, const float * rt,
                         const float * rbh, const float * peep, const int64_t * lens, const float * h0,
                         const float * c0, int64_t seq, int64_t batch, int64_t n_in, int64_t hidden, int reverse,
                         int gru_lbr, const struct ggonnx_rnn_acts * acts, float clip, int input_forget, float * y,
                         int64_t y_step, int64_t y_row, float * hn, float * cn) {
    static const struct ggonnx_rnn_acts defaults = {{GGONNX_RNN_ACT_SIGMOID, GGONNX_RNN_ACT_TANH, GGONNX_RNN_ACT_TANH},
                                                    {0.0f, 0.0f, 0.0f}, {0.0f, 0.0f, 0.0f}};
    const struct ggonnx_rnn_acts a = acts ? *acts : (kind == GGONNX_RNN
        ? (struct ggonnx_rnn_acts) {{GGONNX_RNN_ACT_TANH, 0, 0}, {0.0f, 0.0f, 0.0f}, {0.0f, 0.0f, 0.0f}}
        : defaults);
    const int clipped = clip > 0.0f;
    const v16 lo = SPLAT(-clip), hi = SPLAT(clip);
    /* a gate's activation, its input clamped first when the layer has a clip */
#define CL(v) (clipped ? clamp16((v), lo, hi) : (v))
#define F(v) act16(a.kind[0], a.alpha[0], a.beta[0], CL(v))
#define G(v) act16(a.kind[1], a.alpha[1], a.beta[1], CL(v))
#define HA(v) act16(a.kind[2], a.alpha[2], a.beta[2], (v))
    const int64_t H = hidden, G = kind == GGONNX_LSTM ? 4 : kind == GGONNX_GRU ? 3 : 1, n = G * H;
    float * g = (float *) malloc(sizeof(float) * (n + 4 * H));
    if (g == NULL) {
        return -1;
    }
    float * hr = g + n;          /* GRU: h R_h^T, or (r * h) R_h^T */
    float * rh = hr + H;         /* GRU: r * h */
    float * h = rh + H, * c = h + H;
    for (int64_t b = 0; b < batch; ++b) {
        const int64_t len = lens ? lens[b] : seq;
        if (h0) memcpy(h, h0 + b * H, sizeof(float) * H); else memset(h, 0, sizeof(float) * H);
        if (c0 && kind == GGONNX_LSTM) memcpy(c, c0 + b * H, sizeof(float) * H); else memset(c, 0, sizeof(float) * H);
        for (int64_t s = 0; s < seq; ++s) {
            if (s >= len) {   /* steps past this row's end: outputs 0 */
                memset(y + s * y_step + b * y_row, 0, sizeof(float) * H);
                continue;
            }
            const int64_t t = reverse ? len - 1 - s : s;
            float * yt = y + t * y_step + b * y_row;
            if (bias) memcpy(g, bias, sizeof(float) * n); else memset(g, 0, sizeof(float) * n);
            add_h_rt(g, x + (t * batch + b) * n_in, wt, n_in, n, n);   /* x_t W^T */
            if (kind == GGONNX_GRU) {
                add_h_rt(g, h, rt, H, n, 2 * H);   /* the z and r columns of rt */
                for (int64_t j = 0; j < H; j += 16) {
                    const int64_t m = MIN(16, H - j);
                    const v16 r = F(load_n(g + H + j, m));
                    store_n(g + j, F(load_n(g + j, m)), m);
                    store_n(g + H + j, r, m);
                    store_n(rh + j, r * load_n(h + j, m), m);
                }
                /* the h gate: h R_h^T (+ Rb_h) inside r * (...) with linear_before_reset, else (r * h) R_h^T */
                memset(hr, 0, sizeof(float) * H);
                add_h_rt(hr, gru_lbr ? h : rh, rt + 2 * H, H, n, H);
                for (int64_t j = 0; j < H; j += 16) {
                    const int64_t m = MIN(16, H - j);
                    const v16 z = load_n(g + j, m), hp = load_n(h + j, m);
                    const v16 pre = gru_lbr ? load_n(g + 2 * H + j, m) + load_n(g + H + j, m) *
                                                  (load_n(hr + j, m) + (rbh ? load_n(rbh + j, m) : SPLAT(0.0f)))
                                            : load_n(g + 2 * H + j, m) + load_n(hr + j, m);
                    store_n(h + j, (SPLAT(1.0f) - z) * G(pre) + z * hp, m);
                }
            } else if (kind == GGONNX_LSTM) {
                add_h_rt(g, h, rt, H, n, n);
                for (int64_t j = 0; j < H; j += 16) {
                    const int64_t m = MIN(16, H - j);
                    v16 cc = load_n(c + j, m);
                    v16 gi = load_n(g + j, m), go = load_n(g + H + j, m), gf = load_n(g + 2 * H + j, m);
                    if (peep) {
                        gi += load_n(peep + j, m) * cc;
                        gf += load_n(peep + 2 * H + j, m) * cc;
                    }
                    const v16 i = F(gi);
                    cc = (input_forget ? SPLAT(1.0f) - i : F(gf)) * cc + i * G(load_n(g + 3 * H + j, m));
                    if (peep) {
                        go += load_n(peep + H + j, m) * cc;
                    }
                    store_n(c + j, cc, m);
                    store_n(h + j, F(go) * HA(cc), m);
                }
            } else {
                add_h_rt(g, h, rt, H, n, n);
                for (int64_t j = 0; j < H; j += 16) {
                    const int64_t m = MIN(16, H - j);
                    store_n(h + j, F(load_n(g + j, m)), m);
                }
            }
            memcpy(yt, h, sizeof(float) * H);
        }
        memcpy(hn + b * H, h, sizeof(float) * H);
        if (cn && kind == GGONNX_LSTM) {
            memcpy(cn + b * H, c, sizeof(float) * H);
        }
    }
    free(g);
    return 0;
#undef CL
#undef F
#undef G
#undef HA
}
