"""What the command line gives a session and takes from it: the model, concrete input shapes,
random feeds, outputs printed and saved."""
from __future__ import annotations

import os
import time
import zipfile

import numpy as np

SAMPLE_DIM = 1     # free (symbolic) dims get this size unless --shape, --dim or --batch says otherwise
MAX_ID = 100       # integer inputs get ids in [0, MAX_ID), fewer where an embedding table is smaller


class UsageError(Exception):
    """A command-line argument that does not fit the model: reported in one line, exit code 2."""


def model_source(path):
    """(what Session takes, a label for reports): the file, or the built-in CNN when no path is given."""
    if path is None:
        from ggonnx.default_model import make_default_model
        return make_default_model(), "built-in default CNN (seeded random weights)"
    if not os.path.isfile(path):
        raise UsageError(f"no such file: {path}" if not os.path.exists(path) else f"not a file: {path}")
    return path, path


def open_session(args):
    """(Session, model source, label, load seconds) for a command's model, threads and weights."""
    import ggonnx
    model, label = model_source(args.model)
    t0 = time.perf_counter()
    sess = ggonnx.Session(model, threads=args.threads, weights=args.weights)
    return sess, model, label, time.perf_counter() - t0


def open_and_run_once(args):
    """(Session, model source, label, load s, feeds, first outputs, first-run s): what `run` and
    `bench` start with (the first run plans the feeds' shapes)."""
    sess, model, label, t_load = open_session(args)
    feeds = feeds_for(sess, args)
    t0 = time.perf_counter()
    outs = sess.run(None, feeds)
    return sess, model, label, t_load, feeds, outs, time.perf_counter() - t0


def feeds_for(sess, args) -> dict:
    """Every input's value: --input files as given, random values of the shapes --shape, --dim and
    --batch resolve for the rest."""
    names = [a.name for a in sess.get_inputs()]
    given = {}
    for name, path in getattr(args, "input", None) or []:
        if name not in names:
            raise UsageError(f"--input names {name!r}, not an input; the model's inputs: {', '.join(names)}")
        given[name] = np.load(path)
    # a file's shape fixes the free dims it shares with the other inputs, as --shape does
    shapes = dict(args.shape or [])
    shapes.update({k: v.shape for k, v in given.items()})
    resolved = resolve_shapes(sess.get_inputs(), shapes, dict(args.dim or []), args.batch)
    return random_feeds(sess, resolved, args.seed, given)


def resolve_shapes(inputs, shapes: dict, dims: dict | None = None, batch: int | None = None) -> dict:
    """{input name: concrete shape} for ``inputs`` (NodeArgs).

    ``shapes`` {name: dims} fixes whole inputs, ``dims`` {dim name: size} named free dims, and
    ``batch`` the first free dim of each input. A free dim is one size everywhere it appears: an
    input's --shape fixes its named dims in the other inputs too."""
    names = [a.name for a in inputs]
    unknown = [n for n in shapes if n not in names]
    if unknown:
        raise UsageError(f"--shape names {', '.join(map(repr, unknown))}, not an input; the model's inputs: "
                         f"{', '.join(names) or '(none)'}")
    bound = dict(dims or {})
    source = {d: f"--dim {d}" for d in bound}
    for arg in inputs:
        given, declared = shapes.get(arg.name), arg.shape
        if given is None or not declared:  # no shape declared (or a scalar): the session checks
            continue
        if len(given) != len(declared):
            raise UsageError(f"--shape {arg.name}: {len(given)} dims given, the model declares {len(declared)} "
                             f"({_dims_str(declared)})")
        for d, g in zip(declared, given):
            if isinstance(d, str):
                if d in bound and bound[d] != g:
                    raise UsageError(f"free dim {d!r} is {bound[d]} in {source[d]} but {g} in --shape {arg.name}")
                bound[d], source[d] = g, f"--shape {arg.name}"
    if batch is not None:
        for arg in inputs:
            free = [i for i, d in enumerate(arg.shape or ()) if not isinstance(d, int)]
            if free and arg.name not in shapes:
                first = arg.shape[free[0]]
                # an unnamed free dim (None) is this input's alone
                bound.setdefault(first if first is not None else (arg.name, free[0]), batch)
    return {arg.name: tuple(shapes[arg.name]) if arg.name in shapes else
            tuple(d if isinstance(d, int) else bound.get(d if d is not None else (arg.name, i), SAMPLE_DIM)
                  for i, d in enumerate(arg.shape or ()))
            for arg in inputs}


def _dims_str(shape) -> str:
    return "[" + ", ".join(map(str, shape)) + "]"


def id_limits(sess) -> dict:
    """{input name: rows of the smallest constant table a Gather indexes with it}: random ids stay
    inside an embedding table."""
    # The session's IR, read only; a session without one (or a renamed attribute) just gets
    # ids in [0, MAX_ID).
    graph = getattr(sess, "_graph", None)
    limits = {}
    if graph is None:
        return limits
    for node in graph.nodes:
        if node.op_type in ("Gather", "GatherElements") and len(node.inputs) > 1 and \
                node.inputs[0] in graph.initializers:
            table = graph.initializers[node.inputs[0]]
            axis = int(node.attrs.get("axis", 0))
            if -table.ndim <= axis < table.ndim:
                rows = int(table.shape[axis])
                limits[node.inputs[1]] = min(limits.get(node.inputs[1], rows), rows)
    return limits


def random_feeds(sess, shapes: dict, seed: int, given: dict | None = None) -> dict:
    """A value for every input of ``sess`` not in ``given``: floats standard normal in the input's
    dtype, integers ids in [0, 100) (ones for a mask), bools at random."""
    rng = np.random.default_rng(seed)
    limits = id_limits(sess)
    feeds = {}
    for arg in sess.get_inputs():
        if given and arg.name in given:
            feeds[arg.name] = given[arg.name]
            continue
        if not arg.type.startswith("tensor("):
            raise UsageError(f"input {arg.name!r} is a {arg.type}, not a tensor: random values are made for "
                             f"tensors only (feed it from Python)")
        dtype = _dtype_of(arg.type)
        if dtype is None or dtype.kind in "OUS":
            raise UsageError(f"input {arg.name!r} is a {arg.type}: no random values for it; "
                             f"give it with --input {arg.name}=FILE.npy")
        shape = shapes[arg.name]
        if dtype.kind == "f":
            value = rng.standard_normal(shape).astype(dtype)
        elif dtype.kind == "b":
            value = rng.random(shape) < 0.5
        elif dtype.kind in "iu":
            if "mask" in arg.name.lower():  # attention masks: attend to everything
                value = np.ones(shape, dtype)
            else:
                high = max(1, min(MAX_ID, limits.get(arg.name, MAX_ID), int(np.iinfo(dtype).max)))
                value = rng.integers(0, high, size=shape).astype(dtype)
        else:
            raise UsageError(f"input {arg.name!r} has dtype {dtype}: no random values for it; "
                             f"give it with --input {arg.name}=FILE.npy")
        feeds[arg.name] = value
    return feeds


def _dtype_of(type_str: str):
    """numpy dtype of an onnxruntime-style 'tensor(float)' string; None where numpy has none."""
    name = type_str[len("tensor("):-1]
    name = {"float": "float32", "double": "float64", "string": "object"}.get(name, name)
    try:
        return np.dtype(name)
    except TypeError:
        return None


def describe(value) -> str:
    """One line about an output: shape, dtype and statistics, or what kind of value it is."""
    if value is None:
        return "none (an empty optional)"
    if isinstance(value, dict):
        return f"map of {len(value)} entries"
    if isinstance(value, (list, tuple)):
        shapes = ", ".join(_dims_str(np.shape(v)) for v in value[:4]) + (", ..." if len(value) > 4 else "")
        return f"sequence of {len(value)} tensors {shapes}".rstrip()
    a = np.asarray(value)
    head = f"shape {list(a.shape)} {a.dtype}"
    if a.size and a.dtype.kind == "b":
        head += f"  {int(np.count_nonzero(a))} of {a.size} true"
    elif a.size and a.dtype.kind in "fiu":
        num = a.astype(np.float64)
        head += f"  mean {num.mean():.6g}  min {num.min():.6g}  max {num.max():.6g}"
    return head


def save_npz(path, outputs: dict) -> list[str]:
    """Write {output name: value} as an .npz (np.load(path)[name]); sequences as 'name[i]' entries.
    Returns the names of outputs that could not be stored (maps, empty optionals)."""
    skipped = []
    # np.savez(path, **outputs) would clash with its own keyword arguments ("file", "allow_pickle")
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for name, value in outputs.items():
            if isinstance(value, (list, tuple)):
                items = [(f"{name}[{i}]", v) for i, v in enumerate(value)]
            elif value is None or isinstance(value, dict):
                skipped.append(name)
                continue
            else:
                items = [(name, value)]
            for key, v in items:
                with zf.open(key + ".npy", "w", force_zip64=True) as fh:
                    np.lib.format.write_array(fh, np.asanyarray(v), allow_pickle=False)
    return skipped
