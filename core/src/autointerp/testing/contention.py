"""CPU contention for tests of concurrent code: busy-loop processes that keep every core busy.

    with busy_cpus():
        ...  # the code under test competes for the CPU, as on a loaded CI machine

The processes end on their own after ``seconds`` even if the test process dies.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

_SPIN = "import time\nend = time.monotonic() + {seconds}\nwhile time.monotonic() < end: pass\n"


@contextmanager
def busy_cpus(per_core: int = 3, seconds: float = 300.0) -> Iterator[int]:
    """Start ``per_core`` spinning processes per core (three per core starve a test process
    the way a busy machine does); yields how many were started; kills them on exit."""
    count = per_core * (os.cpu_count() or 1)
    procs = [
        subprocess.Popen([sys.executable, "-c", _SPIN.format(seconds=seconds)])
        for _ in range(count)
    ]
    try:
        yield count
    finally:
        for proc in procs:
            proc.kill()
        for proc in procs:
            proc.wait(10)
