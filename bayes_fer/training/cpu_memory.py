"""Keep freed CPU memory in the process while training, as PyTorch's CUDA allocator does on GPUs.

glibc returns large freed blocks to the system at once and serves each large request with
fresh pages, so every training step on the CPU faults in its activations and gradients anew,
page by page (hundreds of MB per ``poster_var`` step: about 8% of the step on 2 cores). A
training loop asks for the same sizes step after step, so keeping what was freed costs no
peak memory and saves that work. Intel's CPU tuning guides for PyTorch reach the same end by
preloading jemalloc or tcmalloc.

Set ``BAYES_FER_SYSTEM_MALLOC=1`` to leave the allocator as it is.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform

# mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
# Blocks up to this size come from the heap, and free space at its top is returned past it.
_KEEP_BYTES = 1 << 30

_kept = False


def keep_freed_cpu_memory() -> bool:
    """Make glibc keep freed blocks for reuse; True when it now does (or already did).

    A no-op returning False off glibc (macOS, Windows, musl) or with ``BAYES_FER_SYSTEM_MALLOC=1``.
    """
    global _kept
    if _kept:
        return True
    if os.environ.get("BAYES_FER_SYSTEM_MALLOC") == "1" or platform.system() != "Linux":
        return False
    if platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    _kept = bool(libc.mallopt(_M_MMAP_THRESHOLD, _KEEP_BYTES)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, _KEEP_BYTES))
    return _kept
