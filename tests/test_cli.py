"""The command line: ggonnx run, bench, info, quantize and --version, through ggonnx.cli.main."""
import json
import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto as T, helper, numpy_helper

import ggonnx
from ggonnx import _core
from ggonnx.benchmark import summary, time_blocks
from ggonnx.cli import main
from ggonnx.cli_inputs import random_feeds, resolve_shapes
from models import mlp


def _save(model, tmp_path, name):
    path = tmp_path / name
    onnx.save(model, str(path))
    return str(path)


def ids_model() -> onnx.ModelProto:
    """int64 ids into a 10-row table, an int64 mask, a float16 and a bool input; 'seq' shared."""
    emb = numpy_helper.from_array(np.arange(40, dtype=np.float32).reshape(10, 4), "emb")
    ax = numpy_helper.from_array(np.array([-1], np.int64), "ax")
    nodes = [helper.make_node("Gather", ["emb", "input_ids"], ["e"]),
             helper.make_node("Cast", ["attention_mask"], ["m"], to=T.FLOAT),
             helper.make_node("Unsqueeze", ["m", "ax"], ["m2"]),
             helper.make_node("Mul", ["e", "m2"], ["e2"]),
             helper.make_node("Cast", ["x16"], ["h"], to=T.FLOAT),
             helper.make_node("Unsqueeze", ["h", "ax"], ["h2"]),
             helper.make_node("Add", ["e2", "h2"], ["y"]),
             helper.make_node("Not", ["flag"], ["z"])]
    graph = helper.make_graph(nodes, "ids", [
        helper.make_tensor_value_info("input_ids", T.INT64, ["batch", "seq"]),
        helper.make_tensor_value_info("attention_mask", T.INT64, ["batch", "seq"]),
        helper.make_tensor_value_info("x16", T.FLOAT16, ["batch", "seq"]),
        helper.make_tensor_value_info("flag", T.BOOL, ["seq"])],
        [helper.make_tensor_value_info("y", T.FLOAT, ["batch", "seq", 4]),
         helper.make_tensor_value_info("z", T.BOOL, ["seq"])], [emb, ax])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="test",
                              producer_version="1.2")
    model.metadata_props.add(key="author", value="me")
    return model


def sequence_input_model() -> onnx.ModelProto:
    graph = helper.make_graph([helper.make_node("SequenceAt", ["s", "i"], ["t"]), helper.make_node("Relu", ["t"], ["y"])],
                              "seq", [helper.make_tensor_sequence_value_info("s", T.FLOAT, None),
                                      helper.make_tensor_value_info("i", T.INT64, [])],
                              [helper.make_tensor_value_info("y", T.FLOAT, None)])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def sequence_output_model() -> onnx.ModelProto:
    graph = helper.make_graph([helper.make_node("SplitToSequence", ["x"], ["s"], axis=0)], "so",
                              [helper.make_tensor_value_info("x", T.FLOAT, [3, 2])],
                              [helper.make_tensor_sequence_value_info("s", T.FLOAT, None)])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def string_input_model() -> onnx.ModelProto:
    graph = helper.make_graph([helper.make_node("Identity", ["s"], ["t"])], "str",
                              [helper.make_tensor_value_info("s", T.STRING, [2])],
                              [helper.make_tensor_value_info("t", T.STRING, [2])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


# -- copied from test_api.py (the subprocess path: python -m ggonnx) ---------------------------
def test_cli_run_default_model_and_info(tmp_path):
    run = subprocess.run([sys.executable, "-m", "ggonnx", "run", "--repeat", "3"], capture_output=True, text=True,
                         check=True)
    assert "output probs: shape [1, 10]" in run.stdout
    path = tmp_path / "mlp.onnx"
    path.write_bytes(mlp().SerializeToString())
    info = subprocess.run([sys.executable, "-m", "ggonnx", "info", str(path), "--shape", "x=64,64"],
                          capture_output=True, text=True, check=True)
    assert "MatMul" in info.stdout and "matmul on" in info.stdout and "7 of 7 nodes run in ggml" in info.stdout and "100.0% of FLOPs in ggml" in info.stdout


def test_cli_reports_errors_without_traceback(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    proc = subprocess.run([sys.executable, "-m", "ggonnx", "run", str(bad)], capture_output=True, text=True)
    assert proc.returncode == 2 and "ModelLoadError" in proc.stderr and "Traceback" not in proc.stderr


# -- --version ----------------------------------------------------------------------------------
def test_version(capsys):
    assert main(["--version"]) == 0
    out = capsys.readouterr().out.strip()
    assert out.startswith(f"ggonnx {ggonnx.__version__}") and _core.ggml_version_string() in out


# -- bench --------------------------------------------------------------------------------------
def test_bench_json(tmp_path, capsys):
    path = _save(mlp(), tmp_path, "mlp.onnx")
    assert main(["bench", path, "--batch", "4", "--repeat", "7", "--warmup", "1", "--threads", "1", "--json"]) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert captured.err == ""  # no progress bar with --json
    assert result["threads"] == 1 and result["inputs"] == {"x": {"shape": [4, 64], "dtype": "float32"}}
    g = result["ggonnx"]
    assert g["calls"] == 7 and 0 < g["min_ms"] <= g["median_ms"] <= g["p90_ms"]
    assert result["onnxruntime"] is None and result["ratio"] is None


def test_bench_compare_onnxruntime_json(tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    path = _save(mlp(), tmp_path, "mlp.onnx")
    assert main(["bench", path, "--compare", "onnxruntime", "--repeat", "4", "--warmup", "1", "--threads", "1",
                 "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    for key in ("model", "threads", "inputs", "ggonnx", "onnxruntime", "ratio", "max_abs_diff", "load_ms",
                "first_run_ms", "warmup", "other_load"):
        assert key in result
    for runtime in ("ggonnx", "onnxruntime"):
        assert set(result[runtime]) == {"median_ms", "p90_ms", "min_ms", "calls"} and result[runtime]["calls"] == 4
    assert result["ratio"] > 0
    assert result["ratio"] == pytest.approx(result["ggonnx"]["median_ms"] / result["onnxruntime"]["median_ms"])
    assert 0 <= result["max_abs_diff"] < 1e-4


def test_bench_table(tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    path = _save(mlp(), tmp_path, "mlp.onnx")
    assert main(["bench", path, "--compare", "onnxruntime", "--repeat", "2", "--warmup", "0"]) == 0
    out = capsys.readouterr().out
    assert "median ms" in out and "p90 ms" in out and "min ms" in out
    assert "\nggonnx " in out and "\nonnxruntime " in out and "ratio ggonnx/onnxruntime" in out


def test_time_blocks_alternates_runtimes_and_counts_progress():
    order, ticks = [], []
    runners = {"a": lambda: order.append("a"), "b": lambda: order.append("b")}
    samples, per_block, _ = time_blocks(runners, blocks=2, per_block=2, warmup=1, progress=ticks.append)
    # warm-up alternates call by call, then blocks of per_block + 1 calls (the first dropped)
    assert "".join(order) == "ab" + "aaabbb" * 2
    assert per_block == 2 and [len(s) for s in samples.values()] == [4, 4]
    assert sum(ticks) == len(order) == (1 + 2 * 3) * 2
    s = summary([3_000_000, 1_000_000, 2_000_000])
    assert (s["median_ms"], s["min_ms"], s["calls"]) == (2.0, 1.0, 3) and summary([]) is None


def test_progress_bar_goes_to_stderr(capsys):
    from ggonnx.cli_bench import _progress
    update, close = _progress(3, True)
    for _ in range(3):
        update(1)
    close()
    captured = capsys.readouterr()
    assert captured.out == "" and "bench" in captured.err


# -- run ----------------------------------------------------------------------------------------
def test_run_makes_inputs_for_every_dtype_with_shared_dims():
    sess = ggonnx.Session(ids_model())
    shapes = resolve_shapes(sess.get_inputs(), {"input_ids": (2, 5)})
    assert shapes == {"input_ids": (2, 5), "attention_mask": (2, 5), "x16": (2, 5), "flag": (5,)}
    feeds = random_feeds(sess, shapes, seed=0)
    assert feeds["input_ids"].dtype == np.int64 and 0 <= feeds["input_ids"].min() and feeds["input_ids"].max() < 10
    assert feeds["attention_mask"].dtype == np.int64 and (feeds["attention_mask"] == 1).all()
    assert feeds["x16"].dtype == np.float16 and feeds["flag"].dtype == np.bool_
    y, z = sess.run(None, feeds)
    assert y.shape == (2, 5, 4) and z.dtype == np.bool_
    # --dim names a free dim everywhere, --batch takes each input's first free dim
    assert resolve_shapes(sess.get_inputs(), {}, {"seq": 3}, batch=4) == \
        {"input_ids": (4, 3), "attention_mask": (4, 3), "x16": (4, 3), "flag": (3,)}


def test_run_output_npz_round_trip(tmp_path, capsys):
    path, out = _save(ids_model(), tmp_path, "ids.onnx"), tmp_path / "out.npz"
    assert main(["run", path, "--shape", "input_ids=2,5", "--repeat", "1", "--seed", "3", "--output", str(out)]) == 0
    text = capsys.readouterr().out
    assert "input  flag: shape [5] bool" in text and "input  x16: shape [2, 5] float16" in text
    saved = np.load(out)
    sess = ggonnx.Session(path)
    feeds = random_feeds(sess, resolve_shapes(sess.get_inputs(), {"input_ids": (2, 5)}), seed=3)
    y, z = sess.run(None, feeds)
    assert sorted(saved.keys()) == ["y", "z"]
    np.testing.assert_array_equal(saved["y"], y)
    np.testing.assert_array_equal(saved["z"], z)


def test_run_dim_and_batch_options(tmp_path, capsys):
    path = _save(ids_model(), tmp_path, "ids.onnx")
    assert main(["run", path, "--dim", "seq=3", "--batch", "4", "--repeat", "1"]) == 0
    out = capsys.readouterr().out
    assert "input  input_ids: shape [4, 3] int64" in out and "output y: shape [4, 3, 4] float32" in out


def test_run_input_file_fixes_shared_dims(tmp_path, capsys):
    path, ids = _save(ids_model(), tmp_path, "ids.onnx"), tmp_path / "ids.npy"
    np.save(ids, np.array([[1, 2, 3, 4, 5, 6]], np.int64))
    assert main(["run", path, "--input", f"input_ids={ids}", "--repeat", "0"]) == 0
    out = capsys.readouterr().out
    assert "input  flag: shape [6] bool" in out and "output y: shape [1, 6, 4]" in out


def test_run_repeat_zero(tmp_path, capsys):
    assert main(["run", _save(mlp(), tmp_path, "mlp.onnx"), "--repeat", "0"]) == 0
    out = capsys.readouterr().out
    assert "no timed runs" in out and "median" not in out


def test_run_prints_and_saves_sequence_outputs(tmp_path, capsys):
    path, out = _save(sequence_output_model(), tmp_path, "so.onnx"), tmp_path / "s.npz"
    assert main(["run", path, "--repeat", "1", "-o", str(out)]) == 0
    assert "output s: sequence of 3 tensors [1, 2], [1, 2], [1, 2]" in capsys.readouterr().out
    assert sorted(np.load(out).keys()) == ["s[0]", "s[1]", "s[2]"]


# -- info ---------------------------------------------------------------------------------------
def test_info_shows_producer_opsets_metadata_and_parameters(tmp_path, capsys):
    assert main(["info", _save(ids_model(), tmp_path, "ids.onnx"), "--shape", "input_ids=1,4"]) == 0
    out = capsys.readouterr().out
    assert "producer: test 1.2" in out and "opsets: ai.onnx 17" in out and "metadata author: me" in out
    assert "parameters: 41 in 2 initializers" in out
    assert "float32        1 tensors              40 values" in out and "int64" in out
    assert "nodes run in ggml" in out


def test_info_weight_types(tmp_path, capsys):
    assert main(["info", _save(mlp(), tmp_path, "mlp.onnx"), "--weights", "q8_0"]) == 0
    out = capsys.readouterr().out
    # w1 [64, 256] and w2 [256, 256] take q8_0 (34 bytes a 32-value block); w3 [256, 10] is too small
    assert "weights in ggml (--weights q8_0)" in out
    assert f"q8_0           2 tensors  {64 * 256 + 256 * 256:>14,} values" in out
    assert "q8_0 weight" in out


def test_info_gguf_file(tmp_path, capsys):
    gguf = tmp_path / "mlp.gguf"
    assert main(["quantize", _save(mlp(), tmp_path, "mlp.onnx"), "-o", str(gguf), "--weights", "q4_0"]) == 0
    capsys.readouterr()
    assert main(["info", str(gguf)]) == 0
    out = capsys.readouterr().out
    assert "opsets: ai.onnx 17" in out and "q4_0           2 tensors" in out and "parameters: 84,992" in out


def test_info_on_a_model_with_sequence_inputs(tmp_path, capsys):
    assert main(["info", _save(sequence_input_model(), tmp_path, "seq.onnx")]) == 0
    out = capsys.readouterr().out
    assert "input  s:" in out and "placement: not traced (input 's' is not a tensor" in out


# -- one-line errors, exit code 2 -------------------------------------------------------------------
@pytest.mark.parametrize("args, expected", [
    (["run", "{tmp}/missing.onnx"], "no such file"),
    (["info", "{tmp}/missing.onnx"], "no such file"),
    (["bench", "{tmp}/missing.onnx"], "no such file"),
    (["run", "{mlp}", "--shape", "x=a,b"], "argument --shape"),
    (["run", "{mlp}", "--shape", "x"], "argument --shape"),
    (["run", "{mlp}", "--shape", "nope=1,64"], "the model's inputs: x"),
    (["info", "{mlp}", "--shape", "nope=1,64"], "the model's inputs: x"),
    (["run", "{mlp}", "--input", "nope={tmp}/x.npy"], "the model's inputs: x"),
    (["run", "{mlp}", "--repeat", "-1"], "must be >= 0"),
    (["bench", "{mlp}", "--repeat", "0"], "must be >= 1"),
    (["run", "{mlp}", "--weights", "q9_9"], "unknown weight type 'q9_9'"),
    (["run", "{mlp}", "--threads", "0"], "must be >= 1"),
    (["run", "{mlp}", "--shape", "x=2,63"], "expected shape"),
    (["run", "{bad}"], "ModelLoadError"),
    (["info", "{bad}"], "ModelLoadError"),
    (["run", "{strings}"], "string"),
    (["run", "{seq}"], "not a tensor"),
    (["run", "{ids}", "--shape", "input_ids=1,4", "--shape", "x16=1,5"], "free dim 'seq' is 4"),
    (["run", "{ids}", "--dim", "seq=3", "--shape", "input_ids=1,4"], "free dim 'seq' is 3 in --dim seq"),
    (["bench", "{mlp}", "--compare", "tensorflow"], "invalid choice"),
    ([], "required"),
])
def test_bad_arguments_give_one_line_errors(tmp_path, capsys, args, expected):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    paths = {"tmp": tmp_path, "mlp": _save(mlp(), tmp_path, "mlp.onnx"), "bad": bad,
             "strings": _save(string_input_model(), tmp_path, "s.onnx"),
             "seq": _save(sequence_input_model(), tmp_path, "seq.onnx"), "ids": _save(ids_model(), tmp_path, "ids.onnx")}
    assert main([a.format(**paths) for a in args]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert "\n" not in err and "Traceback" not in err and expected in err, err
    assert err.startswith("ggonnx")


def test_profile_table_trace_and_svg(tmp_path, capsys):
    path = tmp_path / "mlp.onnx"
    path.write_bytes(mlp().SerializeToString())
    trace, svg = tmp_path / "t.json", tmp_path / "t.svg"
    assert main(["profile", str(path), "--batch", "4", "--runs", "3", "--trace", str(trace), "--svg", str(svg)]) == 0
    out = capsys.readouterr().out
    assert "op type" in out and "MatMul" in out and "slowest nodes" in out
    events = json.loads(trace.read_text())
    assert sum(e["name"] == "model_run" for e in events) >= 3
    assert svg.read_text().startswith("<svg") and "MatMul" in svg.read_text()


def test_profile_json(tmp_path, capsys):
    path = tmp_path / "mlp.onnx"
    path.write_bytes(mlp().SerializeToString())
    assert main(["profile", str(path), "--batch", "2", "--runs", "2", "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    ops = {r["op"]: r for r in got["op_types"]}
    assert {"MatMul", "Gemm", "Softmax"} <= set(ops)
    assert ops["MatMul"]["gflops"] > 0 and ops["Softmax"]["gflops"] is None
    assert abs(sum(r["share"] for r in got["op_types"]) - 1) < 1e-9 and got["slowest_nodes"]
