"""Fetch the pinned ggml source into vendor/ggml/ (include/, src/, LICENSE).

ggml is not tracked in git. The one source we trust is the sdist of
libggml-python pinned below; its ggml/ folder is ggml 0.20.2. The archive is
downloaded with pip, its sha256 checked, and only ggml's include/, src/ and
LICENSE are unpacked. When the sources are already present (a previous build, or
an sdist of ggonnx, which carries them) nothing is downloaded, so those builds
work offline. Upgrading ggml = changing PACKAGE_VERSION and SHA256.

Small patches of ours (vendor/ggml/patches/*.patch, unified diffs against that source,
each meant upstream) are applied after unpacking, in name order; the stamp records them,
so a changed patch re-unpacks the source.
"""
from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

PACKAGE = "libggml-python"
PACKAGE_VERSION = "0.20.2.post1"
SHA256 = "e47ff53506342959ffb3ce15380b82828fea10ec5f208f9ef6915895f1a7a176"
GGML_VERSION = "0.20.2"

HERE = Path(__file__).resolve().parent
STAMP = HERE / "src" / ".ggml-source"
WANTED = ("include/", "src/", "LICENSE")
PATCHES = sorted((HERE / "patches").glob("*.patch"))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _download(dest: Path) -> Path:
    # --no-binary for this one package only: ':all:' would also build pip's
    # build tools (cmake among them) from source.
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps",
           "--no-binary", PACKAGE, f"{PACKAGE}=={PACKAGE_VERSION}", "-d", str(dest)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"fetch_ggml: '{' '.join(cmd)}' failed:\n{proc.stderr[-2000:]}")
    found = sorted(dest.glob("libggml_python-*.tar.gz"))
    if not found:
        raise SystemExit(f"fetch_ggml: pip did not produce a {PACKAGE} sdist in {dest}")
    return found[0]


def _unpack(archive: Path) -> None:
    with tarfile.open(archive, "r:gz") as tar:
        top = tar.getmembers()[0].name.split("/")[0]
        prefix = f"{top}/ggml/"
        for member in tar.getmembers():
            if not member.name.startswith(prefix):
                continue
            rel = member.name[len(prefix):]
            if not rel.startswith(WANTED) or not (member.isfile() or member.isdir()):
                continue
            target = HERE / rel
            if member.isdir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with tar.extractfile(member) as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst)


def _stamp() -> str:
    patches = " ".join(f"{p.name}:{_sha256(p)[:16]}" for p in PATCHES)
    return f"{PACKAGE}=={PACKAGE_VERSION}" + (f" patches {patches}" if patches else "")


def _apply_patches() -> None:
    for patch in PATCHES:
        cmd = ["patch", "-p1", "--forward", "--batch", "-d", str(HERE), "-i", str(patch)]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True)
        except FileNotFoundError:
            raise SystemExit("fetch_ggml: the 'patch' tool is needed to apply vendor/ggml/patches") from None
        if proc.returncode != 0:
            raise SystemExit(f"fetch_ggml: {patch.name} does not apply:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")


def ensure_sources() -> None:
    if STAMP.exists() and STAMP.read_text().strip() == _stamp():
        return
    cache = HERE / ".cache"
    cache.mkdir(exist_ok=True)
    archive = next(iter(sorted(cache.glob("libggml_python-*.tar.gz"))), None)
    if archive is None or _sha256(archive) != SHA256:
        with tempfile.TemporaryDirectory() as tmp:
            fetched = _download(Path(tmp))
            if _sha256(fetched) != SHA256:
                raise SystemExit(f"fetch_ggml: sha256 mismatch for {fetched.name}")
            archive = cache / fetched.name
            shutil.copy(fetched, archive)
    for sub in ("include", "src"):
        shutil.rmtree(HERE / sub, ignore_errors=True)
    _unpack(archive)
    _apply_patches()
    STAMP.write_text(_stamp() + "\n")


if __name__ == "__main__":
    ensure_sources()
    print(GGML_VERSION)
