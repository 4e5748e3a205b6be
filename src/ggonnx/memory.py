"""Giving memory back after weights are uploaded to ggml.

Loading converts and copies weights in transient numpy buffers; glibc keeps freed heap pages
in the process (gpt2 from a GGUF file: 40 MB), and the pages of a memory-mapped GGUF file stay
resident once read (the file's size again). Both are returned after a plan is built; a mapped
page read again later is simply read from the file again.
"""
from __future__ import annotations

import ctypes
import mmap

try:
    _malloc_trim = ctypes.CDLL("libc.so.6").malloc_trim
except (OSError, AttributeError):  # not glibc
    _malloc_trim = None


def release_after_upload(mapped: list) -> None:
    """Return freed heap pages to the system and drop the resident pages of ``mapped`` (mmap
    objects of read-only file mappings)."""
    for mm in mapped:
        if hasattr(mm, "madvise") and not getattr(mm, "closed", False):
            mm.madvise(mmap.MADV_DONTNEED)
    if _malloc_trim is not None:
        _malloc_trim(0)
