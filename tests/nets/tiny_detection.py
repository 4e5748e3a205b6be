"""Tiny detection and segmentation nets in torch, exported to the ONNX files tests/test_tiny_nets.py runs.

Narrow versions of the bench's U-Net, DBNet-style text detector and YOLO head
(bench/detection.py): the patterns those nets put in a graph (ConvTranspose, nearest Resize by
scale and to a skip's exact size, skip Concats, 5-D Reshape/Transpose/Split and box decoding
against constant grids) at sizes that run in a second. The modules are restated here rather than
imported, so nothing depends on bench/ being importable.

The exported files are committed under tests/data/nets/, so the tests need neither torch nor this
script. To regenerate them (needs torch; fixed seeds, so the weights come out the same):

    python tests/nets/tiny_detection.py

Each case is seeded with torch.manual_seed(0), its BatchNorm statistics are calibrated on two
random batches (untrained stats leave activations badly scaled), and the eval-mode model is
exported at a fixed input shape with opset 17 and the TorchScript exporter (dynamo=False), input
"x", output "y".
"""
import os
import warnings

import torch
import torch.nn.functional as F
from torch import nn

OUT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "data", "nets")


def conv_bn(cin, cout, k=3, stride=1, act=nn.ReLU):
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, k // 2, bias=False), nn.BatchNorm2d(cout), act())


class TinyUNet(nn.Module):
    """Double 3x3 convs, max pools down, ConvTranspose(2, stride 2) up, skips concatenated."""

    def __init__(self, width=4, levels=3):
        super().__init__()
        chans = [width * 2 ** i for i in range(levels + 1)]
        double = lambda cin, cout: nn.Sequential(conv_bn(cin, cout), conv_bn(cout, cout))  # noqa: E731
        self.down = nn.ModuleList(double(cin, c) for cin, c in zip([3] + chans[:-2], chans[:-1]))
        self.bottleneck = double(chans[-2], chans[-1])
        self.up = nn.ModuleList(nn.ConvTranspose2d(c, c // 2, 2, 2) for c in reversed(chans[1:]))
        self.decode = nn.ModuleList(double(c, c // 2) for c in reversed(chans[1:]))
        self.head = nn.Conv2d(width, 2, 1)

    def forward(self, x):
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
            x = F.max_pool2d(x, 2)
        x = self.bottleneck(x)
        for up, decode, skip in zip(self.up, self.decode, reversed(skips)):
            x = decode(torch.cat([up(x), skip], 1))
        return self.head(x)


class TinyTextDetector(nn.Module):
    """Stride 4-32 backbone, FPN (1x1 laterals, nearest top-down + Add), all levels to 1/4 and
    concatenated, head of Conv + two stride-2 ConvTransposes + Sigmoid. ``exact_sizes``
    resizes to the skip's shape (Shape-derived Resize sizes), for inputs not divisible by 32."""

    def __init__(self, widths=(4, 8, 8, 16, 16), inner=16, exact_sizes=False):
        super().__init__()
        self.exact_sizes = exact_sizes
        self.stem = conv_bn(3, widths[0], 3, 2, nn.Hardswish)
        self.stages = nn.ModuleList(
            nn.Sequential(conv_bn(cin, c, 3, 2, nn.Hardswish), conv_bn(c, c, 3, 1, nn.Hardswish))
            for cin, c in zip(widths, widths[1:]))
        self.lateral = nn.ModuleList(nn.Conv2d(c, inner, 1) for c in widths[1:])
        self.smooth = nn.ModuleList(nn.Conv2d(inner, inner // 4, 3, padding=1) for _ in widths[1:])
        q = inner // 4
        self.head = nn.Sequential(conv_bn(inner, q), nn.ConvTranspose2d(q, q, 2, 2), nn.BatchNorm2d(q), nn.ReLU(),
                                  nn.ConvTranspose2d(q, 1, 2, 2), nn.Sigmoid())

    def _up(self, x, like, factor):
        if self.exact_sizes:
            return F.interpolate(x, size=like.shape[-2:], mode="nearest")
        return F.interpolate(x, scale_factor=factor, mode="nearest")

    def forward(self, x):
        x = self.stem(x)
        feats = []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        laterals = [conv(f) for conv, f in zip(self.lateral, feats)]
        pyramid = [laterals[-1]]
        for lat in reversed(laterals[:-1]):
            pyramid.insert(0, lat + self._up(pyramid[0], lat, 2))
        maps = [conv(p) for conv, p in zip(self.smooth, pyramid)]
        fused = torch.cat([maps[0]] + [self._up(m, maps[0], 2 ** i) for i, m in enumerate(maps[1:], 1)], 1)
        return self.head(fused)


class TinyYolo(nn.Module):
    """SiLU backbone, SPPF max pools, nn.Upsample + Concat neck, and a detect head per stride
    8/16/32: Conv 1x1, 5-D Reshape + Transpose, Sigmoid, Split xy/wh/conf, decode against
    constant grids and anchors (Mul/Add/Pow), Concat."""

    def __init__(self, hw, widths=(4, 8, 8, 16, 16), classes=3,
                 anchors=((4, 6, 8, 5), (10, 12, 14, 9), (20, 24, 30, 18))):
        super().__init__()
        w = widths
        self.stem = conv_bn(3, w[0], 3, 2, nn.SiLU)
        self.stages = nn.ModuleList(nn.Sequential(conv_bn(cin, c, 3, 2, nn.SiLU), conv_bn(c, c, 3, 1, nn.SiLU))
                                    for cin, c in zip(w, w[1:]))
        self.spp_in = conv_bn(w[4], w[4] // 2, 1, act=nn.SiLU)
        self.pool = nn.MaxPool2d(5, 1, 2)
        self.spp_out = conv_bn(w[4] * 2, w[4], 1, act=nn.SiLU)
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.reduce5 = conv_bn(w[4], w[3], 1, act=nn.SiLU)
        self.merge4 = conv_bn(w[3] * 2, w[3], 3, act=nn.SiLU)
        self.reduce4 = conv_bn(w[3], w[2], 1, act=nn.SiLU)
        self.merge3 = conv_bn(w[2] * 2, w[2], 3, act=nn.SiLU)
        self.na, self.no = len(anchors[0]) // 2, classes + 5
        self.detect = nn.ModuleList(nn.Conv2d(c, self.na * self.no, 1) for c in (w[2], w[3], w[4]))
        self.strides = (8, 16, 32)
        for i, (s, a) in enumerate(zip(self.strides, anchors)):
            ny, nx = hw[0] // s, hw[1] // s
            yv, xv = torch.meshgrid(torch.arange(ny), torch.arange(nx), indexing="ij")
            grid = torch.stack((xv, yv), -1).float() - 0.5
            self.register_buffer(f"grid{i}", grid.expand(1, self.na, ny, nx, 2).contiguous())
            self.register_buffer(f"anchor{i}", torch.tensor(a, dtype=torch.float32).view(1, self.na, 1, 1, 2))

    def forward(self, x):
        x = self.stem(x)
        feats = []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        p3, p4, p5 = feats[1:]
        s = self.spp_in(p5)
        y1 = self.pool(s)
        y2 = self.pool(y1)
        p5 = self.spp_out(torch.cat([s, y1, y2, self.pool(y2)], 1))
        p4 = self.merge4(torch.cat([self.up(self.reduce5(p5)), p4], 1))
        p3 = self.merge3(torch.cat([self.up(self.reduce4(p4)), p3], 1))
        out = []
        for i, (f, conv, stride) in enumerate(zip((p3, p4, p5), self.detect, self.strides)):
            grid, anchor = getattr(self, f"grid{i}"), getattr(self, f"anchor{i}")
            ny, nx = grid.shape[2:4]
            p = conv(f).view(-1, self.na, self.no, ny, nx).permute(0, 1, 3, 4, 2).sigmoid()
            xy, wh, conf = p.split((2, 2, self.no - 4), -1)
            xy = (xy * 2 + grid) * stride
            wh = (wh * 2) ** 2 * anchor
            out.append(torch.cat((xy, wh, conf), -1).view(-1, self.na * ny * nx, self.no))
        return torch.cat(out, 1)



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
    (_name("unet", s), TinyUNet, s) for s in [(1, 3, 64, 64), (2, 3, 40, 72)]
] + [
    (_name("fpn", (1, 3, 64, 64)), lambda: TinyTextDetector(), (1, 3, 64, 64)),
    (_name("fpn_exact", (1, 3, 50, 70)), lambda: TinyTextDetector(exact_sizes=True), (1, 3, 50, 70)),
    (_name("fpn", (2, 3, 64, 96)), lambda: TinyTextDetector(), (2, 3, 64, 96)),
] + [
    (_name("yolo", s), (lambda s=s: TinyYolo(s[2:])), s) for s in [(1, 3, 64, 64), (1, 3, 64, 96), (2, 3, 64, 64)]
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
