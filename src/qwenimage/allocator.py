"""glibc malloc settings for CPU tensor work: keep large freed blocks for reuse instead of unmapping them.

glibc serves an allocation above its mmap threshold (128 KiB, raised as large blocks are freed) with a fresh
mmap and unmaps it on free, so the next tensor of that size page-faults its whole buffer in again. PyTorch's
CPU allocator asks malloc for every tensor, and a forward pass makes and frees the same few-MiB activations
hundreds of times: on a 2-core AMD EPYC VM (family 26) a bf16 -> fp32 copy of a [1024, 2048] tensor took
1.4 ms instead of 0.02 ms for a quarter of that size, and the int8-dynamic transformer forward ran 2x slower
than with the settings below (`benchmarks/bench_malloc.py` runs both). Allocations up to 32 MiB (the largest
threshold glibc accepts) now come from the heap, and up to 512 MiB of freed heap stays mapped for reuse.

The settings are process-wide; `import qwenimage` applies them once (glibc on Linux only). Set the environment
variable QWENIMAGE_MALLOC_TUNING=0 to keep glibc's defaults (or MALLOC_MMAP_THRESHOLD_ / GLIBC_TUNABLES, which
glibc reads itself).

    from qwenimage.allocator import tune_malloc
    tune_malloc()   # True where applied
"""

from __future__ import annotations

import ctypes
import os
import platform

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt parameters (malloc.h)
MMAP_THRESHOLD = 32 * 2**20  # glibc's maximum (HEAP_MAX_SIZE / 2 on 64-bit)
TRIM_THRESHOLD = 512 * 2**20
_applied: bool | None = None


def tune_malloc() -> bool:
    """Apply the thresholds above with mallopt; False where skipped (not glibc, turned off, or refused)."""
    global _applied
    if _applied is not None:
        return _applied
    _applied = False
    if os.environ.get("QWENIMAGE_MALLOC_TUNING", "1") == "0" or platform.system() != "Linux":
        return False
    if platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    _applied = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    return _applied
