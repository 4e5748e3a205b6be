"""Tiny detection and segmentation nets in torch, exported to the ONNX files tests/test_tiny_nets.py runs.

Narrow versions of the bench's U-Net, DBNet-style text detector and YOLO head
(bench/detection.py): the patterns those nets put in a graph (ConvTranspose, nearest Resize by
scale and to a skip's exact size, skip Concats, 5-D Reshape/Transpose/Split and box decoding
against constant grids) at sizes that run in a second: bench/detection.py's modules at narrow
widths (this script puts bench/ on sys.path; the tests themselves never import bench/).

The exported files are committed under tests/data/nets/, so the tests need neither torch nor this
script. To regenerate them (needs torch; fixed seeds, so the weights come out the same):

    python tests/nets/tiny_detection.py

Each case is seeded with torch.manual_seed(0), its BatchNorm statistics are calibrated on two
random batches (untrained stats leave activations badly scaled), and the eval-mode model is
exported at a fixed input shape with opset 17 and the TorchScript exporter (dynamo=False), input
"x", output "y".
"""
import os
import sys
import warnings

import torch
from torch import nn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, os.pardir, "bench"))
import detection  # noqa: E402

OUT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "data", "nets")


# narrow widths of the bench's architectures
def tiny_unet():
    return detection.UNet(width=4, levels=3)


def tiny_text_detector(exact_sizes=False):
    return detection.TextDetector(widths=(4, 8, 8, 16, 16), inner=16, exact_sizes=exact_sizes)


def tiny_yolo(hw):
    return detection.YoloHead(hw, widths=(4, 8, 8, 16, 16), classes=3,
                              anchors=((4, 6, 8, 5), (10, 12, 14, 9), (20, 24, 30, 18)))


def export(model, shape, path):
    """Calibrate BatchNorm on random inputs, then export the eval-mode model to ``path``."""
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    for m in bns:
        m.momentum = None  # cumulative average over the calibration batches
    model.train()
    with torch.no_grad():
        for _ in range(2):
            model(torch.randn(max(2, shape[0]), *shape[1:]))
    model.eval()
    with warnings.catch_warnings():  # the TorchScript exporter's deprecation notices
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(model, (torch.zeros(shape),), path, input_names=["x"], output_names=["y"],
                          opset_version=17, dynamo=False)


def _name(kind, shape):
    return f"{kind}_{'x'.join(map(str, shape))}"


# (file name, model factory, input shape)
CASES = [
    (_name("unet", s), tiny_unet, s) for s in [(1, 3, 64, 64), (2, 3, 40, 72)]
] + [
    (_name("fpn", (1, 3, 64, 64)), lambda: tiny_text_detector(), (1, 3, 64, 64)),
    (_name("fpn_exact", (1, 3, 50, 70)), lambda: tiny_text_detector(exact_sizes=True), (1, 3, 50, 70)),
    (_name("fpn", (2, 3, 64, 96)), lambda: tiny_text_detector(), (2, 3, 64, 96)),
] + [
    (_name("yolo", s), (lambda s=s: tiny_yolo(s[2:])), s) for s in [(1, 3, 64, 64), (1, 3, 64, 96), (2, 3, 64, 64)]
]


def main():
    os.makedirs(OUT_DIR, exist_ok=True)
    for name, make, shape in CASES:
        torch.manual_seed(0)
        path = os.path.join(OUT_DIR, name + ".onnx")
        export(make(), shape, path)
        print(f"{os.path.relpath(path)}: {os.path.getsize(path)} bytes")


if __name__ == "__main__":
    main()
