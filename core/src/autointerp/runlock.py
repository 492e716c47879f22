"""The run-directory lock: one autointerp process works on a run directory at a time.

:func:`hold_run_dir` holds ``RUN/.lock`` for a block. The lock is an ``flock`` on that file, so
the operating system releases it when the holder exits in any way (``kill -9`` included): a lock
is never stale on one machine. The file holds the holder's pid, host and start time, for the
message a second process refuses with::

    RUN is in use by another autointerp process (pid 1234 on HOST since 10:41:02); wait for it or
    stop it

or, with ``wait=True``, prints once that it waits and polls until the holder is gone (Ctrl-C
stops the wait). The holder removes the file when it is done, and the directory too when it
made it for the lock and nothing was written there. A process may take the lock again
while it holds it (the ``autointerp`` command holds it around :func:`autointerp.pipeline.run`,
which takes it too); another thread of that process is refused like another process.

Without ``fcntl`` (Windows) no lock is taken.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from autointerp.errors import AutointerpError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

#: the lock file inside a run directory
LOCK_FILENAME = ".lock"

#: seconds between tries while waiting for another process's lock
POLL_S = 0.2


class RunDirInUseError(AutointerpError):
    """Another autointerp process holds the run directory; the message names it."""

    def __init__(self, message: str, holder: LockHolder | None = None) -> None:
        super().__init__(message)
        self.holder = holder


@dataclass(frozen=True)
class LockHolder:
    """Who holds a run directory, as its lock file says (fields None where it does not say)."""

    pid: int | None = None
    host: str | None = None
    since: float | None = None

    def describe(self) -> str:
        """``pid 1234 on HOST since 10:41:02`` (the date too when it is not today)."""
        parts = []
        if self.pid is not None:
            parts.append(f"pid {self.pid}")
        if self.host:
            parts.append(f"on {self.host}")
        if self.since is not None:
            then = datetime.datetime.fromtimestamp(self.since)
            same_day = then.date() == datetime.date.today()
            parts.append("since " + then.strftime("%H:%M:%S" if same_day else "%Y-%m-%d %H:%M:%S"))
        return " ".join(parts)


def in_use_message(run_dir: Path, holder: LockHolder | None) -> str:
    about = holder.describe() if holder is not None else ""
    who = f" ({about})" if about else ""
    return f"{run_dir} is in use by another autointerp process{who}; wait for it or stop it"


@dataclass
class _Held:
    fd: int
    path: Path
    thread: int
    depth: int = 1


#: the locks this process holds, by resolved lock-file path
_held: dict[Path, _Held] = {}
_held_guard = threading.Lock()


def lock_path(run_dir: Path) -> Path:
    return Path(run_dir) / LOCK_FILENAME


def read_holder(run_dir: Path) -> LockHolder | None:
    """What the lock file says about its holder (None: no file, or nothing readable in it)."""
    try:
        data = json.loads(lock_path(run_dir).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    pid, host, since = data.get("pid"), data.get("host"), data.get("since")
    return LockHolder(
        pid if isinstance(pid, int) else None,
        host if isinstance(host, str) else None,
        float(since) if isinstance(since, int | float) else None,
    )


@contextlib.contextmanager
def hold_run_dir(
    run_dir: Path,
    *,
    wait: bool = False,
    on_wait: Callable[[str], None] | None = None,
    poll_s: float = POLL_S,
) -> Iterator[None]:
    """Hold ``run_dir``'s lock for the block (creating the directory if needed).

    Refuses with :class:`RunDirInUseError` when another process holds it; with ``wait``, calls
    ``on_wait`` once with a line saying who it waits for, then polls every ``poll_s`` seconds
    until the lock is free (KeyboardInterrupt stops the wait)."""
    run_dir = Path(run_dir)
    created = not run_dir.exists()
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        key = lock_path(run_dir).resolve()
    except OSError as exc:
        raise AutointerpError(f"{run_dir}: cannot create the run directory: {exc}") from None
    if fcntl is None:  # pragma: no cover - Windows
        yield
        return
    me = threading.get_ident()
    with _held_guard:
        held = _held.get(key)
        if held is not None and held.thread == me:  # this thread holds it already
            held.depth += 1
            reentered = True
        else:
            reentered = False
    if reentered:
        try:
            yield
        finally:
            with _held_guard:
                held.depth -= 1
        return
    try:
        fd = _acquire(run_dir, key, wait=wait, on_wait=on_wait, poll_s=poll_s)
    except BaseException:
        if created:
            _remove_if_empty(run_dir)
        raise
    with _held_guard:
        _held[key] = _Held(fd, lock_path(run_dir), me)
    try:
        yield
    finally:
        with _held_guard:
            del _held[key]
        _release(lock_path(run_dir), fd)
        if created:  # a run that stopped before it wrote anything leaves no directory behind
            _remove_if_empty(run_dir)


def _remove_if_empty(run_dir: Path) -> None:
    with contextlib.suppress(OSError):
        run_dir.rmdir()


def _acquire(
    run_dir: Path,
    key: Path,
    *,
    wait: bool,
    on_wait: Callable[[str], None] | None,
    poll_s: float,
) -> int:
    announced = False
    while True:
        with _held_guard:
            busy_here = key in _held  # another thread of this process holds it
        try:
            if busy_here:
                raise RunDirInUseError(in_use_message(run_dir, _me()), _me())
            fd = _try_lock(run_dir)
        except RunDirInUseError as exc:
            if not wait:
                raise
            if not announced and on_wait is not None:
                about = exc.holder.describe() if exc.holder is not None else ""
                on_wait(
                    f"waiting for {run_dir}: in use by another autointerp process"
                    + (f" ({about})" if about else "")
                    + "; Ctrl-C to stop waiting"
                )
            announced = True
            time.sleep(poll_s)
            continue
        if fd is not None:
            return fd


def _me() -> LockHolder:
    return LockHolder(os.getpid(), socket.gethostname(), time.time())


def _describe_self() -> bytes:
    data = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}
    return (json.dumps(data) + "\n").encode("utf-8")


def _try_lock(run_dir: Path) -> int | None:
    """One try: the locked file's descriptor; None when the file changed under us (try again);
    :class:`RunDirInUseError` when another process holds it."""
    path = lock_path(run_dir)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except FileNotFoundError:  # an empty directory removed by a run that stopped: make it again
        run_dir.mkdir(parents=True, exist_ok=True)
        return None
    except OSError as exc:
        raise AutointerpError(f"{run_dir}: cannot open its lock file {path}: {exc}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        found = _holder_after_write(run_dir)
        raise RunDirInUseError(in_use_message(run_dir, found), found) from None
    except OSError as exc:
        os.close(fd)
        raise AutointerpError(f"{run_dir}: cannot lock {path}: {exc}") from None
    # the holder before us may have removed the file after we opened it: lock the file at path
    try:
        same = os.path.samestat(os.fstat(fd), os.stat(path))
    except FileNotFoundError:
        same = False
    if not same:
        os.close(fd)
        return None
    os.ftruncate(fd, 0)
    os.pwrite(fd, _describe_self(), 0)
    return fd


def _holder_after_write(run_dir: Path) -> LockHolder | None:
    """The holder's line; a process that has just taken the lock may not have written it yet."""
    for _ in range(10):
        found = read_holder(run_dir)
        if found is not None:
            return found
        time.sleep(0.02)
    return None


def _release(path: Path, fd: int) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)  # while still locked: a waiter that opened it sees the file is gone
    os.close(fd)
