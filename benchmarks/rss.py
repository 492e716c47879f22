"""Peak-RSS measurement for the benchmarks (standard library only: the delphi side runs it from
another venv)."""

from __future__ import annotations

import resource
from pathlib import Path


def reset_peak_rss() -> tuple[bool, int]:
    """Hand freed heap back to the OS and reset the peak RSS (Linux), so the peak that follows is
    the work's own and not the model load's. Returns (reset done, RSS in KiB right after)."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False, 0
    return True, peak_rss_kib()


def peak_rss_kib() -> int:
    """The process's peak RSS: VmHWM (reset by clear_refs; getrusage's figure also keeps the peak
    of threads that exited, e.g. the model loader's), else getrusage's max RSS."""
    try:
        status = Path("/proc/self/status").read_text()
        return int(status.split("VmHWM:")[1].split()[0])
    except (OSError, IndexError, ValueError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
