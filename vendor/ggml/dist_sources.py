"""meson dist script: put the fetched ggml sources into the sdist so it builds offline."""
import os
import shutil
from pathlib import Path

source_root = Path(os.environ["MESON_SOURCE_ROOT"]) / "vendor" / "ggml"
dist_root = Path(os.environ["MESON_DIST_ROOT"]) / "vendor" / "ggml"
for name in ("include", "src"):
    shutil.copytree(source_root / name, dist_root / name, dirs_exist_ok=True)
shutil.copy(source_root / "LICENSE", dist_root / "LICENSE")
