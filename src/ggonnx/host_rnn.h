/* Recurrent layers (RNN, GRU, LSTM) for the host kernels (host_rnn.c). */
#pragma once
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum ggonnx_rnn_kind { GGONNX_RNN = 0, GGONNX_GRU = 1, GGONNX_LSTM = 2 };

/* The activation functions ONNX's recurrent layers take, with their alpha and beta. */
enum ggonnx_rnn_act {
    GGONNX_RNN_ACT_SIGMOID = 0, GGONNX_RNN_ACT_TANH, GGONNX_RNN_ACT_RELU, GGONNX_RNN_ACT_AFFINE, GGONNX_RNN_ACT_LEAKY_RELU,
    GGONNX_RNN_ACT_THRESHOLDED_RELU, GGONNX_RNN_ACT_SCALED_TANH, GGONNX_RNN_ACT_HARD_SIGMOID, GGONNX_RNN_ACT_ELU,
    GGONNX_RNN_ACT_SOFTSIGN, GGONNX_RNN_ACT_SOFTPLUS
};

struct ggonnx_rnn_acts {
    int kind[3];        /* f, g, h (RNN: f only; GRU: f, g) */
    float alpha[3], beta[3];
};

/* One direction of an ONNX recurrent layer with its default activations, over seq steps of batch
 * rows of hidden size H; G gates (1, 3 or 4, in ONNX's order: GRU z r h, LSTM i o f c).
 *   x       [seq, batch, I]    the inputs
 *   wt      [I, G*H]           W transposed
 *   bias    [G*H] or NULL      every bias outside the recurrence (Wb + Rb; GRU with linear_before_reset:
 *                              Wb only for the h gate)
 *   rt      [H, G*H]           R transposed
 *   rbh     [H] or NULL        GRU with linear_before_reset: Rb of the h gate, inside r * (...)
 *   peep    [3*H] or NULL      LSTM peepholes P (i, o, f)
 *   lens    [batch] or NULL    steps of each row (1..seq); its later outputs are 0
 *   h0, c0  [batch, H] or NULL initial states (0)
 *   y       [seq, batch, H] written with stride y_step between steps, y_row between rows (floats)
 *   hn, cn  [batch, H]         the state after each row's last step (cn: LSTM, may be NULL)
 * reverse walks each row from its last step to its first; gru_lbr: linear_before_reset; acts: the
 * activations f, g, h (NULL: ONNX's defaults, sigmoid and tanh); clip > 0: every gate's input
 * clamped to [-clip, clip] before its activation; input_forget (LSTM): the forget gate is 1 - the
 * input gate.
 * Returns 0, or -1 when out of memory. */
int ggonnx_rnn_direction(int kind, const float * x, const float * wt, const float * bias, const float * rt,
                         const float * rbh, const float * peep, const int64_t * lens, const float * h0,
                         const float * c0, int64_t seq, int64_t batch, int64_t n_in, int64_t hidden, int reverse,
                         int gru_lbr, const struct ggonnx_rnn_acts * acts, float clip, int input_forget, float * y,
                         int64_t y_step, int64_t y_row, float * hn, float * cn);

#ifdef __cplusplus
}
#endif
