"""Detection and segmentation bench models: random weights, exported to ONNX once.

They bring ops the classifiers in ``vision.py`` lack: ConvTranspose, nearest and bilinear
Resize, Concat of skips, Split and constant-grid arithmetic of a YOLO decoder. Needs torch and
torchvision; nothing is downloaded. BatchNorm statistics are calibrated on random images
(``vision._calibrated``) so activations stay well scaled. Exports are cached in ``bench/.cache/``.

- ``unet``: classic U-Net, base width 32, 4 levels; 256x256 at batch 1 and 128x128 at batch 8
  (24 GFLOP a call at batch 1; batch 8 at 256x256 would be ~190 GFLOP, too slow a row).
- ``fpn_textdet``: DBNet-style text detector (backbone, FPN, probability-map head); 640x640 at
  batch 1, 320x320 at batch 8, and an odd 193x257 whose FPN upsamples to each skip's exact size.
- ``yolo_head``: YOLOv5-style backbone, SPPF, FPN neck and a decoding detect head over 3 scales;
  416x416 at batch 1, 320x320 at batch 8.
- ``fcn_resnet50``, ``deeplabv3_mobilenet_v3_large``: torchvision segmentation nets (bilinear
  Resize back to the input size), output "out" only; 224x224 at batch 1 and 8.

Every builder returns ``(model_bytes, feeds, flops)`` like ``models.py``.
"""
from __future__ import annotations

import functools
import os

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from torch import nn

from vision import conv_matmul_flops, export_cached


def flops(model: onnx.ModelProto) -> int:
    """conv_matmul_flops plus ConvTranspose: each input pixel meets every weight of its group,
    2 * prod(input) * (OC/group * kh * kw), the weight being [IC, OC/group, kh, kw]."""
    total = conv_matmul_flops(model)
    g = onnx.shape_inference.infer_shapes(model).graph
    shapes = {vi.name: [d.dim_value for d in vi.type.tensor_type.shape.dim]
              for vi in list(g.input) + list(g.value_info)}
    shapes.update({init.name: list(init.dims) for init in g.initializer})
    for node in g.node:
        if node.op_type == "ConvTranspose":
            x, w = shapes.get(node.input[0]), shapes.get(node.input[1])
            if x and w and 0 not in x:
                total += 2 * int(np.prod(x)) * int(np.prod(w[1:]))
    return total


def conv_bn(cin: int, cout: int, k: int = 3, stride: int = 1, act=nn.ReLU) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, k // 2, bias=False), nn.BatchNorm2d(cout), act())


class UNet(nn.Module):
    """Two 3x3 convs per level, 2x2 max pools down, 2x2 stride-2 transposed convs up, skips
    concatenated, a 1x1 conv to class maps. Sizes must divide by 2**levels."""

    def __init__(self, width: int = 32, levels: int = 4, classes: int = 2):
        super().__init__()
        chans = [width * 2 ** i for i in range(levels + 1)]
        double = lambda cin, cout: nn.Sequential(conv_bn(cin, cout), conv_bn(cout, cout))  # noqa: E731
        self.down = nn.ModuleList(double(cin, c) for cin, c in zip([3] + chans[:-2], chans[:-1]))
        self.bottleneck = double(chans[-2], chans[-1])
        self.up = nn.ModuleList(nn.ConvTranspose2d(c, c // 2, 2, 2) for c in reversed(chans[1:]))
        self.decode = nn.ModuleList(double(c, c // 2) for c in reversed(chans[1:]))
        self.head = nn.Conv2d(width, classes, 1)

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


class TextDetector(nn.Module):
    """DBNet-like: Conv/BN/HardSwish backbone (strides 4-32), FPN with 1x1 laterals and top-down
    nearest upsampling, every level brought to 1/4 and concatenated, then a head that upsamples
    4x with two stride-2 transposed convs to a sigmoid probability map.

    ``exact_sizes`` upsamples to the skip's size (``size=``) instead of by 2: needed when the
    input does not divide by 32, and it puts Shape-derived Resize sizes in the graph."""

    def __init__(self, widths=(16, 24, 48, 96, 192), inner: int = 64, exact_sizes: bool = False):
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

    def _up(self, x, like, factor: int):
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


YOLOV5_ANCHORS = ((10, 13, 16, 30, 33, 23), (30, 61, 62, 45, 59, 119), (116, 90, 156, 198, 373, 326))


class YoloHead(nn.Module):
    """YOLOv5-like: Conv/BN/SiLU backbone, SPPF (three chained 5x5 max pools, concatenated),
    an FPN neck (nn.Upsample nearest + Concat) and a detect head per stride 8/16/32 that
    reshapes, splits into xy/wh/conf and decodes boxes against constant grids.

    The grids are built for ``hw``, so a model serves one input size (divisible by 32)."""

    def __init__(self, hw, widths=(16, 32, 64, 128, 256), classes: int = 80, anchors=YOLOV5_ANCHORS):
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
            grid = torch.stack((xv, yv), -1).float() - 0.5   # YOLOv5's xy = (2 sigmoid - 0.5 + cell) * stride
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
        r5 = self.reduce5(p5)
        p4 = self.merge4(torch.cat([self.up(r5), p4], 1))
        r4 = self.reduce4(p4)
        p3 = self.merge3(torch.cat([self.up(r4), p3], 1))
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


class OutOnly(nn.Module):
    """torchvision segmentation models return a dict; export just its "out"."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x)["out"]


def _segmentation(name: str, hw):
    import torchvision
    ctor = getattr(torchvision.models.segmentation, name)
    return OutOnly(ctor(weights=None, weights_backbone=None, aux_loss=False))


BUILDERS = {
    "unet": lambda hw: UNet(),
    "fpn_textdet": lambda hw: TextDetector(exact_sizes=hw[0] % 32 != 0 or hw[1] % 32 != 0),
    "yolo_head": YoloHead,
    "fcn_resnet50": functools.partial(_segmentation, "fcn_resnet50"),
    "deeplabv3_mobilenet_v3_large": functools.partial(_segmentation, "deeplabv3_mobilenet_v3_large"),
}


def export(name: str, batch: int, hw: tuple) -> bytes:
    return export_cached(name, batch, hw, lambda: BUILDERS[name](hw))


def case(name: str, batch: int, hw: tuple):
    model_bytes = export(name, batch, hw)
    feeds = {"x": np.random.default_rng(0).standard_normal((batch, 3) + tuple(hw)).astype(np.float32)}
    return model_bytes, feeds, flops(onnx.load_from_string(model_bytes))


SIZES = {  # name: (batch-1 size, batch-8 size)
    "unet": ((256, 256), (128, 128)),
    "fpn_textdet": ((640, 640), (320, 320)),
    "yolo_head": ((416, 416), (320, 320)),
    "fcn_resnet50": ((224, 224), (224, 224)),
    "deeplabv3_mobilenet_v3_large": ((224, 224), (224, 224)),
}
CASES = {}
for _name, (_hw1, _hw8) in SIZES.items():
    CASES[f"{_name}_b1"] = functools.partial(case, _name, 1, _hw1)
    CASES[f"{_name}_b8"] = functools.partial(case, _name, 8, _hw8)
CASES["fpn_textdet_193x257"] = functools.partial(case, "fpn_textdet", 1, (193, 257))
