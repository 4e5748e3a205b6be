"""scikit-learn pipelines converted by skl2onnx, ggonnx against onnxruntime (bench/harness.py's
rules), at batch 1 and 1,000. Needs scikit-learn and skl2onnx (`pip install -e .[bench]`).

    cd bench && python sklearn_models.py [--only forest] [--budget 1.0]
"""
from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import bench_args, compare, comparison_cells  # noqa: E402


def pipelines():
    from sklearn.datasets import make_classification
    from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LinearRegression, LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler
    from sklearn.svm import SVC

    x, y = make_classification(2000, 20, n_informative=8, n_classes=3, random_state=0)
    x = x.astype(np.float32)
    cats = np.random.default_rng(0).integers(0, 10, (2000, 6)).astype(np.int64)
    yield "scaler_logreg", make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(x, y), x
    yield "random_forest_100", RandomForestClassifier(100, random_state=0).fit(x, y), x
    yield "gradient_boosting_100", GradientBoostingClassifier(n_estimators=100, random_state=0).fit(x, y), x
    yield "svc_rbf", SVC(probability=False).fit(x[:500], y[:500]), x
    with warnings.catch_warnings():  # sklearn 1.9 deprecates probability=True
        warnings.simplefilter("ignore", FutureWarning)
        proba = SVC(probability=True, random_state=0).fit(x[:500], y[:500])
    yield "svc_rbf_proba", proba, x  # libsvm's pairwise coupling of prob_a / prob_b
    yield "mlp_64x64", MLPClassifier((64, 64), max_iter=300, random_state=0).fit(x, y), x
    target = cats[:, 0] * 0.5 + cats[:, 1]
    yield "onehot_linear", make_pipeline(OneHotEncoder(handle_unknown="ignore"), LinearRegression()).fit(cats, target), cats


def main():
    ap = bench_args(1.0)
    ap.add_argument("--only", action="append", default=[])
    args = ap.parse_args()
    from skl2onnx import to_onnx

    print("| pipeline | batch | ggonnx ms | onnxruntime ms | ratio | agree |")
    print("|---|---|---|---|---|---|")
    for name, est, x in pipelines():
        if args.only and not any(o in name for o in args.only):
            continue
        options = {id(est): {"zipmap": False}} if hasattr(est, "classes_") else None
        model = to_onnx(est, x[:1], options=options, target_opset={"": 17, "ai.onnx.ml": 3}).SerializeToString()
        for batch in (1, 1000):
            try:
                c = compare(model, {"X": x[:batch]}, threads=args.threads, budget_s=args.budget)
            except Exception as exc:  # a pipeline ggonnx cannot run yet
                print(f"| {name} | {batch} | failed: {type(exc).__name__}: {str(exc)[:80]} | | | |", flush=True)
                break
            print(f"| {name} | {batch} | {comparison_cells(c, 3)} |", flush=True)


if __name__ == "__main__":
    main()
