"""One Session used from many threads at once."""
import threading

import numpy as np
import onnxruntime as ort

import ggonnx
from models import mlp


def test_eight_threads_share_one_session():
    model = mlp(seed=3)
    sess = ggonnx.Session(model, threads=2)
    ref = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    inputs = [np.random.default_rng(i).standard_normal((1 + i % 3 * 20, 64)).astype(np.float32) for i in range(8)]
    expected = [ref.run(None, {"x": x})[0] for x in inputs]
    errors = []
    barrier = threading.Barrier(8)

    def worker(i):
        try:
            barrier.wait()
            for _ in range(25):
                got = sess.run(None, {"x": inputs[i]})[0]
                np.testing.assert_allclose(got, expected[i], rtol=1e-4, atol=1e-6)
        except Exception as exc:  # collected and re-raised in the main thread
            errors.append((i, exc))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
