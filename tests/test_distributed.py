"""Sessions beyond one process: pickling, a multiprocessing pool, a Ray Data job.

A session pickles as its model (path, bytes or ModelProto) plus its options and is opened again
where it is unpickled, so it can be handed to multiprocessing workers and Ray actors."""
from __future__ import annotations

import logging
import multiprocessing
import os
import pickle
import sys

import numpy as np
import onnx
import pytest

import ggonnx
from models import mlp

D_IN = 16
ROWS = 3000


@pytest.fixture(scope="module")
def model() -> onnx.ModelProto:
    return mlp(seed=3, d_in=D_IN, hidden=64, d_out=8)


@pytest.fixture(scope="module")
def rows() -> np.ndarray:
    return np.random.default_rng(0).standard_normal((ROWS, D_IN)).astype(np.float32)


def _out(sess, x):
    return sess.run(None, {"x": x})[0]


# -- pickle round trips --------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["path", "bytes", "proto"])
def test_session_pickles(model, rows, tmp_path, kind):
    if kind == "path":
        source = str(tmp_path / "mlp.onnx")
        onnx.save(model, source)
    else:
        source = model.SerializeToString() if kind == "bytes" else model
    sess = ggonnx.Session(source, threads=1)
    again = pickle.loads(pickle.dumps(sess))
    assert type(again) is ggonnx.Session and again is not sess
    assert again.threads == 1
    assert [(i.name, i.shape) for i in again.get_inputs()] == [(i.name, i.shape) for i in sess.get_inputs()]
    x = rows[:37]
    np.testing.assert_array_equal(_out(again, x), _out(sess, x))


def test_inference_session_pickles_with_options(model, rows):
    opts = ggonnx.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.add_free_dimension_override_by_name("N", 8)
    sess = ggonnx.InferenceSession(model.SerializeToString(), sess_options=opts,
                                   providers=["CPUExecutionProvider"])
    again = pickle.loads(pickle.dumps(sess))
    assert type(again) is ggonnx.InferenceSession
    assert again.get_inputs()[0].shape == [8, D_IN]  # the override came along
    assert again.get_session_options().intra_op_num_threads == 1 and again.threads == 1
    assert again.get_providers() == ["CPUExecutionProvider"]
    x = rows[:8]
    np.testing.assert_array_equal(_out(again, x), _out(sess, x))


def test_session_from_relative_path_pickles(model, rows, tmp_path, monkeypatch):
    onnx.save(model, str(tmp_path / "mlp.onnx"))
    monkeypatch.chdir(tmp_path)
    sess = ggonnx.Session("mlp.onnx", threads=1)
    blob = pickle.dumps(sess)
    monkeypatch.chdir(tmp_path.parent)  # the receiving process runs elsewhere: the path went absolute
    np.testing.assert_array_equal(_out(pickle.loads(blob), rows[:5]), _out(sess, rows[:5]))


def test_inference_session_pickles_options_as_opened(model):
    opts = ggonnx.SessionOptions()
    opts.add_free_dimension_override_by_name("N", 8)
    sess = ggonnx.InferenceSession(model.SerializeToString(), sess_options=opts)
    opts.add_free_dimension_override_by_name("N", 4)  # say, for a second session: the first kept a copy
    assert pickle.loads(pickle.dumps(sess)).get_inputs()[0].shape == sess.get_inputs()[0].shape == [8, D_IN]


# -- multiprocessing -----------------------------------------------------------------------------
_worker_session = None


def _pool_init(session):
    global _worker_session
    _worker_session = session  # unpickled, so opened again in this worker


def _pool_run(x):
    return os.getpid(), _out(_worker_session, x)


def test_multiprocessing_pool(model, rows):
    sess = ggonnx.Session(model.SerializeToString(), threads=1)
    batches = np.array_split(rows[:400], 5)
    with multiprocessing.get_context("spawn").Pool(2, initializer=_pool_init, initargs=(sess,)) as pool:
        results = pool.map(_pool_run, batches)
    assert all(pid != os.getpid() for pid, _ in results)
    for (_, got), x in zip(results, batches):
        np.testing.assert_allclose(got, _out(sess, x), rtol=1e-5, atol=1e-7)


# -- Ray Data ------------------------------------------------------------------------------------
class _Predict:
    """map_batches' callable class: one ggonnx session per Ray actor, built in __init__."""

    def __init__(self, model=None, session=None):
        # model: a path or bytes to open here; session: a ggonnx session Ray pickled over
        self.sess = session if session is not None else ggonnx.Session(model, threads=1)

    def __call__(self, batch: dict) -> dict:
        y = self.sess.run(None, {"x": batch["data"]})[0]
        return {"y": y, "pid": np.full(len(y), os.getpid())}


@pytest.fixture(scope="module")
def ray_data():
    ray = pytest.importorskip("ray")
    data = pytest.importorskip("ray.data")
    saved = os.environ.get("RAY_USAGE_STATS_ENABLED")
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    # Ray's workers cannot import this module by name (conftest puts tests/ on the test process's
    # sys.path only): ship _Predict by value. A runtime_env PYTHONPATH would also do, but slows
    # every worker's start by seconds.
    this = sys.modules[__name__]
    ray.cloudpickle.register_pickle_by_value(this)
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             logging_level=logging.ERROR)
    ctx = data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.execution_options.preserve_order = True  # rows come back in order, to compare with a local run
    ray_data_logger = logging.getLogger("ray.data")
    level = ray_data_logger.level
    ray_data_logger.setLevel(logging.WARNING)
    try:
        yield data
    finally:
        ray.shutdown()
        ray.cloudpickle.unregister_pickle_by_value(this)
        ray_data_logger.setLevel(level)
        if saved is None:
            os.environ.pop("RAY_USAGE_STATS_ENABLED", None)
        else:
            os.environ["RAY_USAGE_STATS_ENABLED"] = saved


@pytest.mark.filterwarnings("ignore::DeprecationWarning:ray")  # Ray Data's own deprecated settings
@pytest.mark.parametrize("how", ["bytes in __init__", "pickled session"])
def test_ray_data_map_batches(ray_data, model, rows, how):
    blob = model.SerializeToString()
    if how == "bytes in __init__":
        kwargs = {"model": blob}
    else:  # Ray pickles the constructor's arguments: the session travels as its bytes and options
        opts = ggonnx.SessionOptions()
        opts.intra_op_num_threads = 1  # one thread per actor: an actor holds one of the two CPUs
        kwargs = {"session": ggonnx.InferenceSession(blob, sess_options=opts)}
    ds = ray_data.from_numpy(np.array_split(rows, 6)).map_batches(
        _Predict, fn_constructor_kwargs=kwargs, batch_size=256,
        compute=ray_data.ActorPoolStrategy(size=2), num_cpus=1)
    got = ds.take_batch(ROWS + 1, batch_format="numpy")
    assert len(got["y"]) == ROWS
    assert os.getpid() not in set(got["pid"].tolist()) and len(set(got["pid"].tolist())) <= 2
    local = ggonnx.Session(blob, threads=1)
    np.testing.assert_allclose(got["y"], _out(local, rows), rtol=1e-5, atol=1e-7)
