"""ONNX's recurrent layers on the host: RNN, GRU and LSTM with their default activations, each
direction one C loop over the steps (host_rnn.c), W and R laid out once per session.
onnx.reference stepped through time in Python (a 100-step LSTM of 64: 2.9 ms, onnxruntime 0.1 ms;
one streaming step 85 us against 11.5 us). Other activations, clip and input_forget are refused
(onnx.reference ignores them); non-float32 data and empty sequences go to onnx.reference.

Both layouts (0: [seq, batch, ...], 1: [batch, seq, ...]), all three directions, biases,
sequence_lens (later steps output 0; the final state is each row's last step), initial states and
LSTM peepholes; shapes are checked as onnxruntime checks them.

Depends on nothing in ggonnx above numpy, _core and errors, like host_kernels.
"""
from __future__ import annotations

import numpy as np

from ggonnx import _core
from ggonnx.errors import ShapeError, UnsupportedOpError

_F32 = np.float32
_KINDS = {"RNN": (0, 1, ("Tanh",)), "GRU": (1, 3, ("Sigmoid", "Tanh")), "LSTM": (2, 4, ("Sigmoid", "Tanh", "Tanh"))}


def _check_defaults(node, dirs: int, defaults) -> None:
    """Other activations, clip and input_forget are refused: onnx.reference's kernels ignore
    them (a GRU with HardSigmoid / Relu gave tanh's numbers), so they cannot fall back there."""
    attrs = node.attrs
    acts = attrs.get("activations")
    if acts is not None and [a.decode() if isinstance(a, bytes) else str(a) for a in acts] != list(defaults) * dirs:
        raise UnsupportedOpError(f"{node.describe()}: activations {list(acts)} (only the defaults "
                                 f"{list(defaults) * dirs} are supported)")
    for name in ("clip", "input_forget"):
        if attrs.get(name):
            raise UnsupportedOpError(f"{node.describe()}: attribute {name} is not supported")


def _checked(node, name, a, shape):
    if a is None:
        return None
    a = np.asarray(a)
    if a.shape != tuple(shape):
        raise ShapeError(f"{node.describe()}: input {name} must have shape {list(shape)}, got {list(a.shape)}")
    return np.ascontiguousarray(a, dtype=_F32)


class _Weights:
    """W, R, B and P of one node checked and laid out for the C loop once per session while the
    same arrays are fed (initializers are, run after run: R's transpose alone copied 256 KB a call
    at hidden size 128): per direction W^T, R^T, the biases outside the recurrence, GRU's Rb_h."""

    def __init__(self, node, kind, gates, dirs, n_in, w, r, b, p):
        self.given = (w, r, b, p)
        self.n_in = n_in
        w, r = np.asarray(w), np.asarray(r)
        self.hidden = hidden = int(node.attrs.get("hidden_size", r.shape[-1]))
        n = gates * hidden
        w = _checked(node, "W", w, (dirs, n, n_in))
        r = _checked(node, "R", r, (dirs, n, hidden))
        b = _checked(node, "B", b, (dirs, 2 * n))
        p = _checked(node, "P", p, (dirs, 3 * hidden)) if kind == 2 else None
        self.lbr = bool(node.attrs.get("linear_before_reset", 0)) and kind == 1
        self.dirs = []
        for d in range(dirs):
            bias = rbh = None
            if b is not None:
                bias = b[d, :n] + b[d, n:]
                if self.lbr:   # the h gate's Rb goes inside r * (h R^T + Rb)
                    bias[2 * hidden:] = b[d, 2 * hidden:n]
                    rbh = np.ascontiguousarray(b[d, n + 2 * hidden:])
            self.dirs.append((np.ascontiguousarray(w[d].T), np.ascontiguousarray(r[d].T), bias, rbh,
                              None if p is None else np.ascontiguousarray(p[d])))

    def fits(self, n_in, w, r, b, p) -> bool:
        g = self.given
        return n_in == self.n_in and g[0] is w and g[1] is r and g[2] is b and g[3] is p


def _recurrent(node, x, w, r, b=None, lens=None, h0=None, c0=None, p=None):
    kind, gates, defaults = _KINDS[node.op_type]
    direction = node.attrs.get("direction", "forward")
    dirs = 2 if direction == "bidirectional" else 1
    _check_defaults(node, dirs, defaults)
    x = np.asarray(x)
    if x.dtype != _F32 or np.asarray(w).dtype != _F32 or np.asarray(r).dtype != _F32 or x.ndim != 3 \
            or np.ndim(w) != 3 or np.ndim(r) != 3 or 0 in x.shape:
        return None
    layout = int(node.attrs.get("layout", 0))
    if layout:
        x = x.transpose(1, 0, 2)
    seq, batch, n_in = x.shape
    prep = node.__dict__.get("_host_rnn_weights")
    if prep is None or not prep.fits(n_in, w, r, b, p):
        prep = node.__dict__["_host_rnn_weights"] = _Weights(node, kind, gates, dirs, n_in, w, r, b, p)
    hidden = prep.hidden
    states = (dirs, batch, hidden) if not layout else (batch, dirs, hidden)
    h0, c0 = _checked(node, "initial_h", h0, states), _checked(node, "initial_c", c0, states) if kind == 2 else None
    if lens is not None:
        lens = np.asarray(lens).reshape(-1)
        if lens.shape != (batch,) or lens.dtype.kind not in "iu":
            raise ShapeError(f"{node.describe()}: sequence_lens must be {batch} integers, got {lens.dtype} {list(lens.shape)}")
        if (lens < 1).any() or (lens > seq).any():
            if (lens == 0).any() and (lens >= 0).all() and (lens <= seq).all():
                return None   # an empty row: onnx.reference's reading
            raise ShapeError(f"{node.describe()}: sequence_lens must lie in [0, {seq}], got {lens.tolist()}")
    x = np.ascontiguousarray(x, dtype=_F32)
    runs = []
    for d, (wt, rt, bias, rbh, peep) in enumerate(prep.dirs):
        state = (lambda s: None if s is None else np.ascontiguousarray(s[d] if not layout else s[:, d]))
        runs.append(_core.rnn_direction(kind, x, wt, bias, rt, rbh, peep, lens, state(h0), state(c0),
                                        direction == "reverse" or d == 1, prep.lbr))
    if dirs == 1:   # [seq, batch, H] is [seq, 1, batch, H]: no copy
        y, hn, cn = (a[..., None, :, :] if k == 0 else a[None] for k, a in enumerate(runs[0]))
    else:
        y, hn, cn = (np.stack([run[k] for run in runs], axis=1 if k == 0 else 0) for k in range(3))
    if layout:
        y, hn, cn = y.transpose(2, 0, 1, 3), hn.transpose(1, 0, 2), cn.transpose(1, 0, 2)
    return [np.ascontiguousarray(o) for o, name in zip((y, hn, cn), node.outputs) if name]


def rnn(node, x, w, r, b=None, lens=None, h0=None):
    return _recurrent(node, x, w, r, b, lens, h0)


def gru(node, x, w, r, b=None, lens=None, h0=None):
    return _recurrent(node, x, w, r, b, lens, h0)


def lstm(node, x, w, r, b=None, lens=None, h0=None, c0=None, p=None):
    return _recurrent(node, x, w, r, b, lens, h0, c0, p)


KERNELS = {("", "RNN"): rnn, ("", "GRU"): gru, ("", "LSTM"): lstm}
