"""Opening runs for analyses without touching them: no migration, no write, no new file.

:class:`autointerp.store.Store` migrates an older store forward when it opens it (and WAL mode
creates ``-wal``/``-shm`` files beside it). An analysis must leave a run exactly as it found it,
so :class:`ReadOnlyStore` opens the SQLite file read-only: ``immutable=1`` (nothing is created,
nothing locked) when no write-ahead log is pending, else ``mode=ro`` (a live or killed run whose
recent results still sit in its ``-wal``; SQLite reads them through the existing ``-shm``). Its
read methods are the store's own; the analyses only use those that work on every schema version
(runs, latents, scores, explanations, ledger), and check optional tables and columns first.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autointerp.errors import StoreError
from autointerp.store import SCHEMA_VERSION, STORE_FILENAME, RunNotFoundError, Store
from autointerp_report.runs import (
    HINT,
    RunInputError,
    RunRef,
    parse_run_arg,
    run_sources,
    unique_names,
)


class ReadOnlyStore(Store):
    """A results store opened read-only (see the module docstring); writing raises."""

    def __init__(self, path: str | Path) -> None:
        # Store's own __init__ would migrate: the fields its read methods use, set here
        self.path = Path(path)
        self.readonly = True
        self._payers_pending = False  # (attributes of core's read-only Store, unused here)
        self._lock = threading.RLock()
        self._provenance_ids: dict[str, int] = {}
        self._strings: dict[int, Any] = {}
        wal = self.path.with_name(self.path.name + "-wal")
        pending = wal.is_file() and wal.stat().st_size > 0
        uri = f"{self.path.resolve().as_uri()}?{'mode=ro' if pending else 'immutable=1'}"
        try:
            self._conn = sqlite3.connect(uri, uri=True, timeout=30.0, check_same_thread=False)
            self._conn.row_factory = sqlite3.Row
            version = self._user_version()
        except sqlite3.Error as exc:
            raise StoreError(
                f"cannot read results store {self.path}: {exc}; is it a results.sqlite written "
                "by autointerp (and readable)?"
            ) from exc
        if version > SCHEMA_VERSION:
            self._conn.close()
            raise StoreError(
                f"results store {self.path} has schema version {version} but this autointerp "
                f"knows only up to {SCHEMA_VERSION}; upgrade autointerp to analyse it"
            )
        self.version = version
        self._tables: dict[str, set[str]] = {}

    def _write(self) -> Any:
        raise StoreError(f"{self.path} is open read-only (an analysis never writes to a run)")

    def columns(self, table: str) -> set[str]:
        """The columns of ``table`` (empty if this store has no such table, e.g. an older one)."""
        if table not in self._tables:
            rows = self._query(f"PRAGMA table_info({table})")
            self._tables[table] = {r["name"] for r in rows}
        return self._tables[table]

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        """Rows of a read query."""
        return self._query(sql, params)

    def iter_rows(self, sql: str, params: Sequence[Any] = (), page: int = 4096) -> Iterator[Any]:
        """Rows of a read query from its cursor, ``page`` at a time: memory holds a page."""
        return self._iter_query(sql, params, page)


@dataclass
class OpenRun:
    """A run opened for an analysis: its read-only store, run id and label."""

    store: ReadOnlyStore
    run_id: int
    ref: RunRef

    @property
    def label(self) -> str:
        return self.ref.label


@contextmanager
def open_readonly(
    arg: str | Path, name: str | None = None, run_id: int | None = None
) -> Iterator[OpenRun]:
    """A run directory (``DIR`` or ``DIR@ID``) opened read-only, its run picked as ``status`` and
    ``report`` pick it (the latest that did work, unless an id is given)."""
    path, wanted = parse_run_arg(arg)
    wanted = run_id if run_id is not None else wanted
    if not (path / STORE_FILENAME).is_file():
        where = "does not exist" if not path.exists() else f"has no {STORE_FILENAME}"
        raise RunInputError(f"{path}: {where}; {HINT}")
    try:
        store = ReadOnlyStore(path / STORE_FILENAME)
    except StoreError as exc:
        raise RunInputError(str(exc)) from None
    try:
        try:
            picked = store.pick_run(wanted)
        except RunNotFoundError as exc:
            raise RunInputError(f"{path}: {exc}") from None
        sources = run_sources(store, picked, set()) or _result_sources(store, picked)
        yield OpenRun(store, picked, RunRef(path, picked, name or path.resolve().name, sources))
    finally:
        store.close()


def _result_sources(store: ReadOnlyStore, run_id: int) -> tuple[str, ...]:
    rows = store.rows(
        "SELECT source FROM explanations WHERE run_id = ? UNION SELECT source FROM scores "
        "WHERE run_id = ? ORDER BY source",
        (run_id, run_id),
    )
    return tuple(r[0] for r in rows)


@contextmanager
def open_runs(args: Sequence[str | Path]) -> Iterator[list[OpenRun]]:
    """Several runs opened read-only, labelled by directory name (widened where two share one)."""
    if not args:
        raise RunInputError("give at least one run directory")
    paths = [parse_run_arg(a)[0] for a in args]
    names = unique_names([str(a) for a in args], paths)
    with ExitStack() as stack:
        yield [stack.enter_context(open_readonly(a, n)) for a, n in zip(args, names, strict=True)]
