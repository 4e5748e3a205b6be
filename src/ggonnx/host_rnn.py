"""ONNX's recurrent layers on the host: RNN, GRU and LSTM with their default activations, each
direction one C loop over the steps (host_rnn.c), W and R laid out once per session.
onnx.reference stepped through time in Python (a 100-step LSTM of 64: 2.9 ms, onnxruntime 0.1 ms;
one streaming step 85 us against 11.5 us). Every activation onnxruntime takes, with its alpha and
beta, clip and input_forget (onnx.reference ignores all of these); non-float32 data and empty
sequences go to onnx.reference.

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


# host_rnn.h's activation codes; which take alpha / beta, and their defaults (onnxruntime's reading)
_ACTS = {"sigmoid": 0, "tanh": 1, "relu": 2, "affine": 3, "leakyrelu": 4, "thresholdedrelu": 5, "scaledtanh": 6,
         "hardsigmoid": 7, "elu": 8, "softsign": 9, "softplus": 10}
_TAKES = {"affine": (True, True), "leakyrelu": (True, False), "thresholdedrelu": (True, False),
          "scaledtanh": (True, True), "hardsigmoid": (True, True), "elu": (True, False)}
_DEFAULT_ARGS = {"leakyrelu": (0.01, 0.0), "hardsigmoid": (0.2, 0.5), "elu": (1.0, 0.0)}


def _activations(node, dirs: int, defaults) -> list | None:
    """Per direction three (code, alpha, beta) for f, g, h, or None for the defaults. alpha and
    beta are taken in order by the functions that have them; a name onnxruntime does not know is
    refused (onnx.reference ignores ``activations``: a GRU with HardSigmoid / Relu gave tanh's
    numbers)."""
    attrs = node.attrs
    names = attrs.get("activations")
    if names is None:
        return None
    names = [(a.decode() if isinstance(a, bytes) else str(a)).lower() for a in names]
    per_dir = len(defaults)
    if len(names) != per_dir * dirs or any(n not in _ACTS for n in names):
        raise UnsupportedOpError(f"{node.describe()}: activations {names} ({per_dir} per direction among "
                                 f"{sorted(_ACTS)})")
    alphas, betas = iter(attrs.get("activation_alpha", [])), iter(attrs.get("activation_beta", []))
    funcs = []
    for n in names:
        takes_a, takes_b = _TAKES.get(n, (False, False))
        default_a, default_b = _DEFAULT_ARGS.get(n, (0.0, 0.0))
        funcs.append((_ACTS[n], next(alphas, default_a) if takes_a else 0.0, next(betas, default_b) if takes_b else 0.0))
    return [(funcs[d * per_dir:(d + 1) * per_dir] + [(1, 0.0, 0.0)] * 3)[:3] for d in range(dirs)]


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
    acts = _activations(node, dirs, defaults)
    clip = float(node.attrs.get("clip", 0.0))
    forget = bool(node.attrs.get("input_forget", 0)) and kind == 2
    if "clip" in node.attrs and not clip > 0:
        raise ShapeError(f"{node.describe()}: clip must be positive, got {clip}")
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
                                        direction == "reverse" or d == 1, prep.lbr, None if acts is None else acts[d],
                                        clip, forget))
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
