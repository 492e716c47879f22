"""Results store: one SQLite file (WAL mode) per run directory.

Holds runs, per-latent statistics, examples, explanations, scores and every LLM call. Each ``put_*``
commits on its own, so a killed process loses at most the result it was writing, and a resumed run
asks ``has_explanation`` / ``explained`` / ``scored`` what is already done. LLM responses are cached
by request hash and every call, paid or cache hit, gets a ledger row (with the stage and component
that asked), so ``usage`` tells them apart and ``usage_by_component`` says who paid. A call's
request and response are stored as zlib-compressed JSON BLOBs (:func:`pack_json`; rows of
stores older than schema 9 hold JSON text), and so are a score's predictions (schema 10 on):
the store's readers and :func:`unpack_json` read either form.

The schema is versioned with ``PRAGMA user_version``: ``MIGRATIONS[i]`` takes a store from version
``i`` to ``i + 1``. Opening an older store for writing migrates it forward; opening it read-only
(``Store(path, readonly=True)``, :func:`open_run`) leaves the file as it is and reads it through
temporary tables and views in the latest shape. A newer store is refused.
Only the standard library is used; one connection is shared by threads behind a lock.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import re
import sqlite3
import threading
import time
import zlib
from array import array
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from autointerp import fastjson
from autointerp.errors import StoreError
from autointerp.types import (
    Example,
    Explanation,
    LatentIds,
    LatentRef,
    LLMCall,
    Prediction,
    Score,
)

if TYPE_CHECKING:
    from autointerp.examples import ExampleSet

#: File name of the store inside a run directory.
STORE_FILENAME = "results.sqlite"

#: ``(run_id, request_hash, stage, component)`` of the LLM calls that a run's explanations and
#: scores name in their meta (``llm_calls``): who paid for calls recorded before the ledger said
#: (an explainer's call wins over a scorer's asking the same)
_PAYERS = (
    "SELECT run_id, request_hash, MIN(stage) AS stage, component FROM ("
    "SELECT e.run_id AS run_id, j.value AS request_hash, 'explain' AS stage, "
    "e.explainer AS component FROM explanations e, "
    "json_each(CASE WHEN json_valid(e.meta) THEN e.meta ELSE '{}' END, '$.llm_calls') j "
    "UNION ALL SELECT s.run_id, j.value, 'score', s.scorer || '/' || s.explainer FROM scores s, "
    "json_each(CASE WHEN json_valid(s.meta) THEN s.meta ELSE '{}' END, '$.llm_calls') j"
    ") GROUP BY run_id, request_hash"
)

#: what ``progress`` counts: (table, kind, component), the last two as expressions over a row
_COUNTED = (
    ("latents", "'latents'", "''"),
    ("explanations", "'explained'", "{r}.explainer"),
    ("scores", "'scored'", "{r}.scorer || '/' || {r}.explainer"),
    ("failures", "'failed:' || {r}.stage", "{r}.component"),
)
#: the ledger's summed columns (``ledger_totals`` column = expression over a ledger row)
_LEDGER_SUMS = (
    ("calls", "1 - {r}.cached"),
    ("cache_hits", "{r}.cached"),
    ("prompt_tokens", "{r}.prompt_tokens"),
    ("cached_tokens", "{r}.cached_tokens"),
    ("completion_tokens", "{r}.completion_tokens"),
    ("cost_usd", "{r}.cost_usd"),
    ("latency_s", "{r}.latency_s"),
)


def _counter_migration() -> tuple[str, ...]:
    """Migration 8: ``progress`` and ``ledger_totals``, their triggers, and their backfill.

    Rows replaced by ``INSERT OR REPLACE`` are counted out by the delete triggers because the
    store's connections set ``recursive_triggers``."""
    out = [
        """CREATE TABLE progress (
            run_id INTEGER NOT NULL,
            kind TEXT NOT NULL,
            component TEXT NOT NULL,
            n INTEGER NOT NULL,
            PRIMARY KEY (run_id, kind, component)
        )""",
        """CREATE TABLE ledger_totals (
            run_id INTEGER NOT NULL,
            stage TEXT NOT NULL,
            component TEXT NOT NULL,
            calls INTEGER NOT NULL,
            cache_hits INTEGER NOT NULL,
            prompt_tokens INTEGER NOT NULL,
            cached_tokens INTEGER NOT NULL,
            completion_tokens INTEGER NOT NULL,
            cost_usd REAL NOT NULL,
            latency_s REAL NOT NULL,
            PRIMARY KEY (run_id, stage, component)
        )""",
    ]
    for table, kind, component in _COUNTED:

        def key(r: str, kind: str = kind, component: str = component) -> str:
            return f"{r}.run_id, {kind.format(r=r)}, {component.format(r=r)}"

        out += [
            f"CREATE TRIGGER {table}_counted AFTER INSERT ON {table} BEGIN "
            f"INSERT INTO progress (run_id, kind, component, n) VALUES ({key('NEW')}, 1) "
            "ON CONFLICT (run_id, kind, component) DO UPDATE SET n = n + 1; END",
            f"CREATE TRIGGER {table}_uncounted AFTER DELETE ON {table} BEGIN "
            f"UPDATE progress SET n = n - 1 WHERE (run_id, kind, component) = ({key('OLD')}); "
            "END",
            f"INSERT INTO progress (run_id, kind, component, n) "
            f"SELECT {key('t')}, COUNT(*) FROM {table} t GROUP BY 1, 2, 3",
        ]
    cols = ", ".join(c for c, _ in _LEDGER_SUMS)

    def values(r: str) -> str:
        return ", ".join(e.format(r=r) for _, e in _LEDGER_SUMS)

    def ledger_key(r: str) -> str:
        return f"COALESCE({r}.run_id, 0), {r}.stage, {r}.component"

    add = ", ".join(f"{c} = {c} + excluded.{c}" for c, _ in _LEDGER_SUMS)
    sub = ", ".join(f"{c} = {c} - ({e.format(r='OLD')})" for c, e in _LEDGER_SUMS)
    insert = (
        f"INSERT INTO ledger_totals (run_id, stage, component, {cols}) "
        f"VALUES ({ledger_key('NEW')}, {values('NEW')}) "
        f"ON CONFLICT (run_id, stage, component) DO UPDATE SET {add}"
    )
    delete = (
        f"UPDATE ledger_totals SET {sub} WHERE (run_id, stage, component) = ({ledger_key('OLD')})"
    )
    sums = ", ".join(f"SUM({e.format(r='t')})" for _, e in _LEDGER_SUMS)
    out += [
        f"CREATE TRIGGER ledger_counted AFTER INSERT ON llm_ledger BEGIN {insert}; END",
        f"CREATE TRIGGER ledger_uncounted AFTER DELETE ON llm_ledger BEGIN {delete}; END",
        f"CREATE TRIGGER ledger_recounted AFTER UPDATE ON llm_ledger BEGIN {delete}; {insert}; END",
        f"INSERT INTO ledger_totals (run_id, stage, component, {cols}) "
        f"SELECT {ledger_key('t')}, {sums} FROM llm_ledger t GROUP BY 1, 2, 3",
    ]
    return tuple(out)


#: ``MIGRATIONS[i]`` holds the statements taking the schema from version ``i`` to ``i + 1``.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    # 1: runs, latents, explanations, scores, LLM cache and ledger
    (
        """CREATE TABLE runs (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL,
            config TEXT NOT NULL,
            status TEXT NOT NULL,
            started_at REAL NOT NULL,
            finished_at REAL
        )""",
        """CREATE TABLE latents (
            run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
            source TEXT NOT NULL,
            idx INTEGER NOT NULL,
            frequency REAL NOT NULL,
            max_activation REAL NOT NULL,
            extra TEXT NOT NULL,
            PRIMARY KEY (run_id, source, idx)
        )""",
        """CREATE TABLE explanations (
            run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
            source TEXT NOT NULL,
            idx INTEGER NOT NULL,
            explainer TEXT NOT NULL,
            text TEXT NOT NULL,
            meta TEXT NOT NULL,
            created_at REAL NOT NULL,
            PRIMARY KEY (run_id, source, idx, explainer)
        )""",
        """CREATE TABLE scores (
            run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
            source TEXT NOT NULL,
            idx INTEGER NOT NULL,
            explainer TEXT NOT NULL,
            scorer TEXT NOT NULL,
            value REAL,
            metrics TEXT NOT NULL,
            predictions TEXT NOT NULL,
            n_failures INTEGER NOT NULL,
            meta TEXT NOT NULL,
            created_at REAL NOT NULL,
            PRIMARY KEY (run_id, source, idx, explainer, scorer)
        )""",
        "CREATE INDEX scores_by_scorer ON scores (run_id, scorer)",
        """CREATE TABLE llm_calls (
            request_hash TEXT PRIMARY KEY,
            client TEXT NOT NULL,
            model TEXT NOT NULL,
            request TEXT NOT NULL,
            response TEXT NOT NULL,
            prompt_tokens INTEGER NOT NULL,
            cached_tokens INTEGER NOT NULL,
            completion_tokens INTEGER NOT NULL,
            cost_usd REAL NOT NULL,
            latency_s REAL NOT NULL,
            created_at REAL NOT NULL
        )""",
        """CREATE TABLE llm_ledger (
            id INTEGER PRIMARY KEY,
            request_hash TEXT NOT NULL REFERENCES llm_calls(request_hash),
            run_id INTEGER REFERENCES runs(id) ON DELETE SET NULL,
            cached INTEGER NOT NULL,
            prompt_tokens INTEGER NOT NULL,
            cached_tokens INTEGER NOT NULL,
            completion_tokens INTEGER NOT NULL,
            cost_usd REAL NOT NULL,
            latency_s REAL NOT NULL,
            at REAL NOT NULL
        )""",
        "CREATE INDEX llm_ledger_by_run ON llm_ledger (run_id)",
    ),
    # 2: activating examples shown to explainers and scorers
    (
        """CREATE TABLE examples (
            run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
            source TEXT NOT NULL,
            idx INTEGER NOT NULL,
            rank INTEGER NOT NULL,
            kind TEXT NOT NULL,
            tokens TEXT NOT NULL,
            str_tokens TEXT NOT NULL,
            activations TEXT NOT NULL,
            PRIMARY KEY (run_id, source, idx, rank)
        )""",
    ),
    # 3: latents a stage gave up on, with the reason (never scored, shown in reports)
    (
        """CREATE TABLE failures (
            run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
            source TEXT NOT NULL,
            idx INTEGER NOT NULL,
            stage TEXT NOT NULL,
            component TEXT NOT NULL,
            reason TEXT NOT NULL,
            created_at REAL NOT NULL,
            PRIMARY KEY (run_id, source, idx, stage, component)
        )""",
    ),
    # 4: provenance of explanations and scores (config hash, model ids, prompt version, library
    # version), stored once per distinct record and referenced by id
    (
        """CREATE TABLE provenance (
            id INTEGER PRIMARY KEY,
            digest TEXT NOT NULL UNIQUE,
            data TEXT NOT NULL
        )""",
        "ALTER TABLE explanations ADD COLUMN provenance_id INTEGER REFERENCES provenance(id)",
        "ALTER TABLE scores ADD COLUMN provenance_id INTEGER REFERENCES provenance(id)",
    ),
    # 5: batches submitted to a provider's batch API and the requests each holds, so that a
    # restarted run polls a live batch instead of paying for its requests again
    (
        """CREATE TABLE llm_batches (
            id TEXT PRIMARY KEY,
            client TEXT NOT NULL,
            endpoint TEXT NOT NULL,
            status TEXT NOT NULL,
            input_file_id TEXT,
            output_file_id TEXT,
            error_file_id TEXT,
            meta TEXT NOT NULL,
            n_requests INTEGER NOT NULL,
            run_id INTEGER REFERENCES runs(id) ON DELETE SET NULL,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            ended_at REAL
        )""",
        "CREATE INDEX llm_batches_live ON llm_batches (client, endpoint, ended_at)",
        """CREATE TABLE llm_batch_requests (
            batch_id TEXT NOT NULL REFERENCES llm_batches(id) ON DELETE CASCADE,
            request_hash TEXT NOT NULL,
            request TEXT,
            outcome TEXT,
            PRIMARY KEY (batch_id, request_hash)
        )""",
        "CREATE INDEX llm_batch_requests_by_hash ON llm_batch_requests (request_hash)",
    ),
    # 6: a latent's examples in one row of arrays (token ids and activations as little-endian
    # bytes), and each run's token strings by id, once: the compact form runs write from now on
    # (``examples`` rows of earlier runs are still read)
    (
        """CREATE TABLE example_sets (
            run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
            source TEXT NOT NULL,
            idx INTEGER NOT NULL,
            kinds TEXT NOT NULL,
            n INTEGER NOT NULL,
            width INTEGER NOT NULL,
            token_dtype TEXT NOT NULL,
            tokens BLOB NOT NULL,
            activation_dtype TEXT NOT NULL,
            activations BLOB NOT NULL,
            PRIMARY KEY (run_id, source, idx)
        )""",
        """CREATE TABLE token_strings (
            run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
            token INTEGER NOT NULL,
            text TEXT NOT NULL,
            PRIMARY KEY (run_id, token)
        )""",
    ),
    # 7: who paid for each LLM call: the stage and component (explainer, or scorer/explainer)
    # that asked, in the ledger and in the requests of a batch; existing ledger rows get them
    # from the request hashes their run's explanations and scores name (meta ``llm_calls``)
    (
        "ALTER TABLE llm_ledger ADD COLUMN stage TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE llm_ledger ADD COLUMN component TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE llm_batch_requests ADD COLUMN stage TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE llm_batch_requests ADD COLUMN component TEXT NOT NULL DEFAULT ''",
        f"UPDATE llm_ledger SET stage = p.stage, component = p.component FROM ({_PAYERS}) AS p "
        "WHERE p.run_id = llm_ledger.run_id AND p.request_hash = llm_ledger.request_hash",
    ),
    # 8: running counts per run (latents, explained/scored/failed per component) and ledger
    # totals per run, stage and component, kept by triggers, so that ``status`` reads a few rows
    # instead of counting millions (see ``_counted``)
    _counter_migration(),
    # 9: the request and response of ``llm_calls`` (and the request payloads of
    # ``llm_batch_requests``) are written as zlib-compressed JSON BLOBs (:func:`pack_json`),
    # about 5x smaller; rows written before keep their JSON text and are read as they are. No
    # statement: the version alone makes an older autointerp refuse a store it would misread
    (),
    # 10: a score's ``predictions`` are written the same way (~15x smaller: 3.0 KB -> 0.2 KB
    # per score in economy mode); older rows keep their JSON text. No statement, as for 9
    (),
)

#: forgets one failure (``clear_failure``, and ``put_score`` in the score's transaction)
_CLEAR_FAILURE = (
    "DELETE FROM failures WHERE run_id = ? AND source = ? AND idx = ? AND stage = ? "
    "AND component = ?"
)

#: The schema version this code writes.
SCHEMA_VERSION = len(MIGRATIONS)
#: the version from which a store keeps running counts (a read-only older one is counted)
_COUNTED_SINCE = 8


class RunNotFoundError(StoreError):
    """A run directory without a store, or a store without the run asked for."""


@contextmanager
def open_run(
    run_dir: str | Path,
    run_id: int | None = None,
    *,
    empty_ok: bool = False,
    writable: bool = False,
) -> Iterator[tuple[Store, Any]]:
    """An existing run directory's store and one of its runs (``run_id``, else the latest): the one
    way ``status``, ``export`` and ``report`` open a run. Read-only unless ``writable``: a store
    written by an older autointerp is read as it is, never migrated in place. One-line errors
    naming the directory; ``empty_ok``: a store without runs yields None as the id."""
    run_dir = Path(run_dir)
    if not (run_dir / STORE_FILENAME).is_file():
        where = "does not exist" if not run_dir.exists() else f"has no {STORE_FILENAME}"
        raise RunNotFoundError(f"{run_dir}: {where}; is this a run directory?")
    with Store(run_dir / STORE_FILENAME, readonly=not writable) as store:
        picked: int | None = None
        if not (empty_ok and run_id is None and not store.runs()):
            try:
                picked = store.pick_run(run_id)
            except RunNotFoundError as exc:
                raise RunNotFoundError(f"{run_dir}: {exc}") from None
        yield store, picked


def request_hash(payload: Mapping[str, Any]) -> str:
    """Content hash of an LLM request: sha256 hex of its canonical JSON (sorted keys, no spaces)."""
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ProgressCounts:
    """:meth:`Store.progress_counts`: latents, and done/failed counts per component."""

    latents: int
    explained: Counter[str]
    scored: Counter[str]
    failed: dict[str, Counter[str]]


@dataclass(frozen=True)
class RunRecord:
    """One run: its config as given, ``status`` ("running", "finished", "failed"...) and times."""

    id: int
    name: str
    config: dict[str, Any] = field(compare=False)
    status: str
    started_at: float
    finished_at: float | None


@dataclass(frozen=True)
class LatentStats:
    """Per-latent statistics over the cached corpus; ``extra`` holds any further fields."""

    latent: LatentRef
    frequency: float
    max_activation: float
    extra: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class Usage:
    """LLM usage totals. Tokens, cost and latency count paid calls only, not cache hits."""

    calls: int = 0
    cache_hits: int = 0
    prompt_tokens: int = 0
    cached_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    latency_s: float = 0.0


@dataclass(frozen=True)
class LedgerEntry:
    """One ledger row: an LLM call a run made, paid or a cache hit (``cached``: its tokens, cost
    and latency are zero, paid once by the call that filled the cache), with the ``stage`` and
    ``component`` that asked ("" where not known)."""

    at: float
    client: str
    model: str
    cached: bool
    prompt_tokens: int
    cached_tokens: int
    completion_tokens: int
    cost_usd: float
    latency_s: float
    request_hash: str
    stage: str
    component: str


@dataclass(frozen=True)
class LLMBatch:
    """A batch submitted to a provider's batch API: its id there, the client and endpoint that
    submitted it, the provider's ``status``, its files (``meta``: anything else the provider
    reported) and ``ended_at``, set once its results are stored (None: the batch is live)."""

    id: str
    client: str
    endpoint: str
    status: str
    n_requests: int
    created_at: float
    updated_at: float
    input_file_id: str | None = None
    output_file_id: str | None = None
    error_file_id: str | None = None
    meta: dict[str, Any] = field(default_factory=dict, compare=False)
    run_id: int | None = None
    ended_at: float | None = None


def _dumps(value: Any, what: str, *, fast: bool = False) -> str:
    """JSON text of a column: sorted keys, or (``fast``: LLM requests and responses, the bulk of
    what a run writes) :func:`autointerp.fastjson.dumps`'s compact text in the value's own order."""
    try:
        return fastjson.dumps(value) if fast else json.dumps(value, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise StoreError(f"cannot store {what}: not JSON-serializable ({exc})") from exc


#: zlib level of stored LLM requests and responses and score predictions: level 1 keeps ~93 % of
#: level 6's saving on a run's calls (2.5 vs 2.7 KB from 13.4 KB of JSON) for less CPU per call
#: (benchmarks/RESULTS.md)
JSON_LEVEL = 1


def pack_json(value: Any, what: str = "LLM request") -> bytes:
    """How the store writes an LLM request or response (schema 9 on) and a score's predictions
    (schema 10 on): compact JSON (:func:`autointerp.fastjson.dumps`), UTF-8, zlib-compressed
    (``zlib.compress``, with the zlib header), stored as a BLOB. :func:`unpack_json` reads it
    back."""
    return zlib.compress(_dumps(value, what, fast=True).encode("utf-8"), JSON_LEVEL)


def unpack_json(column: bytes | str, what: str = "LLM call") -> Any:
    """The JSON value of a stored column written by :func:`pack_json` (LLM requests and
    responses, score predictions), in either form: a BLOB (zlib-compressed JSON) or JSON text
    (rows written by older versions). For a plain ``sqlite3`` connection:
    ``json.loads(zlib.decompress(blob))`` does the same on a BLOB."""
    if isinstance(column, bytes):
        try:
            column = zlib.decompress(column)
        except zlib.error as exc:
            raise StoreError(
                f"corrupt {what} in results store: not zlib-compressed JSON ({exc})"
            ) from exc
    return fastjson.loads(column)


def _out_of_space(exc: sqlite3.Error, path: Path) -> bool:
    """Whether SQLite failed for want of space ("disk I/O error" when even its WAL index cannot
    grow: told apart from a damaged file by the space left)."""
    import shutil

    from autointerp.errors import file_size_limited

    if "disk is full" in str(exc):
        return True
    if "disk I/O error" not in str(exc):
        return False
    if file_size_limited():
        return True
    try:
        return shutil.disk_usage(path.parent).free < 1 << 20
    except OSError:
        return False


class Store:
    """The results store of one run directory. Use as a context manager or call ``close()``."""

    def __init__(self, path: str | Path, *, readonly: bool = False) -> None:
        """Open (creating if needed) the store at ``path`` and migrate it to ``SCHEMA_VERSION``;
        ``readonly``: open an existing store without writing to it (an older schema is read
        through temporary tables and views, see :func:`_read_shims`; writes raise)."""
        self.path = Path(path)
        self.readonly = readonly
        self._lock = threading.RLock()
        self._provenance_ids: dict[str, int] = {}
        self._strings: dict[int, Any] = {}  # run id -> token strings by id
        self._payers_pending = False  # read-only, older schema: ledger payers not inferred yet
        try:
            if readonly:
                uri = self.path.resolve().as_uri() + "?mode=ro"
                self._conn = sqlite3.connect(
                    uri, uri=True, timeout=30.0, isolation_level=None, check_same_thread=False
                )
            else:
                self._conn = sqlite3.connect(
                    self.path, timeout=30.0, isolation_level=None, check_same_thread=False
                )
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open results store {self.path}: {exc}") from exc
        try:
            self._conn.row_factory = sqlite3.Row
            self._conn.execute("PRAGMA busy_timeout = 30000")
            version = self._user_version()
            _check_version(version, self.path)
            if readonly:
                self._payers_pending = _read_shims(self._conn, version)
            else:
                self._conn.execute("PRAGMA journal_mode = WAL")
                self._conn.execute("PRAGMA synchronous = NORMAL")
                self._conn.execute("PRAGMA foreign_keys = ON")
                # a row that INSERT OR REPLACE replaces is counted out by the delete triggers
                self._conn.execute("PRAGMA recursive_triggers = ON")
                _migrate(self._conn, self.path)
            #: ``progress`` and ``ledger_totals`` are kept (migration 8): counts are reads
            self._counted = self._user_version() >= _COUNTED_SINCE
        except StoreError:
            self._conn.close()
            raise
        except sqlite3.Error as exc:
            self._conn.close()
            if _out_of_space(exc, self.path):
                raise StoreError(
                    f"cannot open results store {self.path}: the disk is full ({exc}); free some "
                    "space and rerun the same command: finished work is kept"
                ) from exc
            raise StoreError(
                f"cannot open results store {self.path}: {exc}; "
                "is it a results.sqlite written by autointerp?"
            ) from exc

    @classmethod
    def open(cls, run_dir: str | Path) -> Store:
        """Open ``run_dir/results.sqlite``, creating the directory and the file if needed."""
        run_dir = Path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        return cls(run_dir / STORE_FILENAME)

    def close(self) -> None:
        """Close the connection; calling it twice is harmless."""
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def schema_version(self) -> int:
        """The schema version of the open file (``SCHEMA_VERSION`` once opened)."""
        with self._lock:
            return self._user_version()

    def _user_version(self) -> int:
        return int(self._conn.execute("PRAGMA user_version").fetchone()[0])

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One transaction, committed on exit, rolled back on error."""
        if self.readonly:
            raise StoreError(
                f"{self.path} was opened read-only; open it with Store(path) (or "
                "open_run(..., writable=True)) to write"
            )
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except sqlite3.IntegrityError as exc:
                self._conn.execute("ROLLBACK")
                raise StoreError(
                    f"write to {self.path} rejected: {exc}; "
                    "use a run id returned by start_run on this store"
                ) from exc
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def _iter_query(
        self, sql: str, params: Sequence[Any] = (), page: int = 4096, plain: bool = False
    ) -> Iterator[Any]:
        """Rows of a read query from its cursor, ``page`` at a time (memory holds a page);
        ``plain`` gives tuples instead of Row objects, cheaper for 100k+ rows."""
        with self._lock:
            cursor = self._conn.execute(sql, params)
            if plain:
                cursor.row_factory = None
        while rows := cursor.fetchmany(page):
            yield from rows

    # runs

    def start_run(self, name: str, config: Mapping[str, Any]) -> int:
        """Record a new run with status "running"; returns its id."""
        config_json = _dumps(dict(config), "run config")
        with self._write() as conn:
            cur = conn.execute(
                "INSERT INTO runs (name, config, status, started_at) VALUES (?, ?, 'running', ?)",
                (name, config_json, time.time()),
            )
            assert cur.lastrowid is not None
            return cur.lastrowid

    def finish_run(self, run_id: int, status: str = "finished") -> None:
        """Set a run's final status and finish time."""
        with self._write() as conn:
            cur = conn.execute(
                "UPDATE runs SET status = ?, finished_at = ? WHERE id = ?",
                (status, time.time(), run_id),
            )
            if cur.rowcount == 0:
                raise StoreError(f"no run {run_id} in {self.path}; list them with Store.runs()")

    def resume_run(self, run_id: int) -> None:
        """Mark a run "running" again while a rerun resumes it (its finish time is cleared; its
        start time is kept)."""
        with self._write() as conn:
            cur = conn.execute(
                "UPDATE runs SET status = 'running', finished_at = NULL WHERE id = ?", (run_id,)
            )
            if cur.rowcount == 0:
                raise StoreError(f"no run {run_id} in {self.path}; list them with Store.runs()")

    def get_run(self, run_id: int) -> RunRecord | None:
        """The run with this id, or None."""
        rows = self._query("SELECT * FROM runs WHERE id = ?", (run_id,))
        return _run(rows[0]) if rows else None

    def bind(self, run_id: int) -> RunStore:
        """This store seen from one run (no ``run_id`` to pass around)."""
        return RunStore(self, run_id)

    def runs(self) -> list[RunRecord]:
        """All runs, oldest first."""
        return [_run(r) for r in self._query("SELECT * FROM runs ORDER BY id")]

    def pick_run(self, run_id: int | None = None) -> int:
        """``run_id`` if the store holds it, else (None) the latest run that did work: a run that
        failed or was interrupted before it stored any latent (another config tried on a finished
        run directory) is passed over, unless no run did work. Raises :class:`RunNotFoundError`
        ("the store holds no run yet", "no run N; runs here: ...")."""
        runs = self.runs()
        if not runs:
            raise RunNotFoundError("the store holds no run yet")
        if run_id is None:
            worked = [r for r in runs if not self.did_nothing(r)]
            return (worked or runs)[-1].id
        if run_id not in {r.id for r in runs}:
            ids = ", ".join(str(r.id) for r in runs)
            raise RunNotFoundError(f"no run {run_id}; runs here: {ids}")
        return run_id

    def did_nothing(self, run: RunRecord) -> bool:
        """Whether ``run`` ended (failed or interrupted) before it stored any latent."""
        return run.status in ("failed", "interrupted") and not self.has_latents(run.id)

    # latents

    def has_latents(self, run_id: int) -> bool:
        """Whether the run has stored any latent (its cache stage got that far)."""
        return bool(self._query("SELECT 1 FROM latents WHERE run_id = ? LIMIT 1", (run_id,)))

    def put_latents(self, run_id: int, source: str, rows: Iterable[Mapping[str, Any]]) -> None:
        """Upsert per-latent stats in one transaction.

        Each row needs ``index``, ``frequency`` and ``max_activation``; other keys go to ``extra``.
        ``rows`` are consumed as they are inserted (a generator keeps a million latents' rows out
        of memory); a bad row rolls the whole transaction back.
        """

        named = ("index", "frequency", "max_activation")

        def params() -> Iterator[tuple[Any, ...]]:
            for row in rows:
                extra = {k: v for k, v in row.items() if k not in named}
                yield (
                    run_id,
                    source,
                    int(row["index"]),
                    float(row["frequency"]),
                    float(row["max_activation"]),
                    _dumps(extra, f"extra stats of {source}:{row['index']}"),
                )

        with self._write() as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO latents "
                "(run_id, source, idx, frequency, max_activation, extra) VALUES (?, ?, ?, ?, ?, ?)",
                params(),
            )

    def latents(self, run_id: int, source: str | None = None) -> list[LatentStats]:
        """Stats of a run's latents (of one source if given), ordered by source and index."""
        sql = "SELECT * FROM latents WHERE run_id = ?"
        params: list[Any] = [run_id]
        if source is not None:
            sql += " AND source = ?"
            params.append(source)
        return [_latent_stats(r) for r in self._query(sql + " ORDER BY source, idx", params)]

    def latent_stats(
        self, run_id: int, latents: Sequence[LatentRef]
    ) -> dict[LatentRef, LatentStats]:
        """The stats of several latents, ``{latent: stats}`` (latents without are absent), read
        in one range query per source: a reader of a million latents takes them a part at a
        time."""
        return {
            s.latent: s
            for rows in self._latent_rows("SELECT * FROM latents", run_id, latents, "idx")
            for s in map(_latent_stats, rows)
        }

    def latent_sources(self, run_id: int) -> list[str]:
        """The sources of a run's latents, sorted (read from the key's index, not the rows)."""
        sql = "SELECT DISTINCT source FROM latents WHERE run_id = ? ORDER BY source"
        return [r[0] for r in self._query(sql, (run_id,))]

    def latent_ids(self, run_id: int) -> LatentIds:
        """A run's latents as a compact :class:`LatentIds` (8 bytes a latent, from the cursor)."""
        return self._latent_ids("SELECT source, idx FROM latents WHERE run_id = ?", (run_id,))

    # examples

    def put_examples(self, run_id: int, latent: LatentRef, examples: Sequence[Example]) -> None:
        """Replace the stored examples of one latent, keeping their order."""
        params = [
            (
                run_id,
                latent.source,
                latent.index,
                rank,
                ex.kind,
                json.dumps(list(ex.tokens)),
                json.dumps(list(ex.str_tokens)),
                json.dumps(list(ex.activations)),
            )
            for rank, ex in enumerate(examples)
        ]
        with self._write() as conn:
            for table in ("examples", "example_sets"):
                conn.execute(
                    f"DELETE FROM {table} WHERE run_id = ? AND source = ? AND idx = ?",
                    (run_id, latent.source, latent.index),
                )
            conn.executemany(
                "INSERT INTO examples (run_id, source, idx, rank, kind, tokens, str_tokens, "
                "activations) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                params,
            )

    def put_example_sets(
        self, run_id: int, sets: Sequence[ExampleSet], strings: Mapping[int, str]
    ) -> None:
        """Store (replacing) the examples of several latents in one transaction, one row each,
        with the token strings not stored yet for this run (``strings``: id -> text; ids
        already stored keep their text)."""
        rows = [_example_set_row(run_id, x) for x in sets]
        with self._write() as conn:
            conn.executemany(
                "INSERT OR IGNORE INTO token_strings (run_id, token, text) VALUES (?, ?, ?)",
                [(run_id, int(t), text) for t, text in strings.items()],
            )
            conn.executemany(  # rows an earlier version wrote for these latents
                "DELETE FROM examples WHERE run_id = ? AND source = ? AND idx = ?",
                [(run_id, x.latent.source, x.latent.index) for x in sets],
            )
            conn.executemany(
                "INSERT OR REPLACE INTO example_sets (run_id, source, idx, kinds, n, width, "
                "token_dtype, tokens, activation_dtype, activations) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
        table = self._strings.get(run_id)
        if table is not None and strings:  # kept up to date, not read again
            self._strings[run_id] = table = _grown(table, max(strings) + 1)
            for token, text in strings.items():
                if table[token] is None:
                    table[token] = text

    def _token_strings(self, run_id: int) -> Any:
        """The run's token strings as an object array indexed by id (read once, then kept)."""
        import numpy as np

        table = self._strings.get(run_id)
        if table is None:
            rows = self._query("SELECT token, text FROM token_strings WHERE run_id = ?", (run_id,))
            ids = np.array([r[0] for r in rows], dtype=np.int64)
            table = np.empty(int(ids.max()) + 1 if len(ids) else 0, dtype=object)
            table[ids] = [r[1] for r in rows]
            self._strings[run_id] = table
        return table

    def _set_examples(
        self,
        run_id: int,
        row: sqlite3.Row,
        tokens: bool = True,
        roles: Sequence[str] | None = None,
    ) -> list[Example]:
        """The :class:`Example` objects of one ``example_sets`` row (only those whose
        :attr:`~autointerp.types.Example.role` is in ``roles`` if given: the others are not
        decoded)."""
        import numpy as np

        n, width = row["n"], row["width"]
        ids = np.frombuffer(row["tokens"], dtype=row["token_dtype"]).reshape(n, width)
        acts = np.frombuffer(row["activations"], dtype=row["activation_dtype"]).reshape(n, width)
        kinds = _loads(row["kinds"])
        if roles is not None:
            keep = [i for i, kind in enumerate(kinds) if _role(kind) in roles]
            if len(keep) < n:
                ids, acts, kinds, n = ids[keep], acts[keep], [kinds[i] for i in keep], len(keep)
        table = self._token_strings(run_id)
        if len(ids) and int(ids.max()) >= len(table):
            raise StoreError(f"{self.path}: run {run_id} lacks token strings of its examples")
        strings = table[ids].tolist()
        id_lists = ids.tolist() if tokens else [()] * n
        return [
            Example(tuple(t), tuple(st), tuple(a), k)
            for t, st, a, k in zip(
                id_lists, strings, acts.astype(np.float32).tolist(), kinds, strict=True,
            )
        ]  # fmt: skip

    def examples(
        self,
        run_id: int,
        latent: LatentRef,
        kind: str | None = None,
        *,
        roles: Sequence[str] | None = None,
    ) -> list[Example]:
        """The stored examples of one latent (of one kind if given; with ``roles``, only those
        whose :attr:`~autointerp.types.Example.role` is one of them, e.g. ``("test",
        "negative")``, what scorers use, without decoding the others), in the order they were
        put."""
        rows = self._query(
            "SELECT * FROM example_sets WHERE run_id = ? AND source = ? AND idx = ?",
            (run_id, latent.source, latent.index),
        )
        if rows:
            found = self._set_examples(run_id, rows[0], roles=roles)
            return [x for x in found if kind is None or x.kind == kind]
        if roles is not None:
            return [x for x in self.examples(run_id, latent, kind) if x.role in roles]
        sql = "SELECT * FROM examples WHERE run_id = ? AND source = ? AND idx = ?"
        params: list[Any] = [run_id, latent.source, latent.index]
        if kind is not None:
            sql += " AND kind = ?"
            params.append(kind)
        return [
            Example(
                tokens=tuple(json.loads(r["tokens"])),
                str_tokens=tuple(json.loads(r["str_tokens"])),
                activations=tuple(json.loads(r["activations"])),
                kind=r["kind"],
            )
            for r in self._query(sql + " ORDER BY rank", params)
        ]

    def latent_examples(
        self, run_id: int, latents: Sequence[LatentRef], *, tokens: bool = True
    ) -> dict[LatentRef, list[Example]]:
        """The stored examples of several latents in a few range reads, ``{latent: examples}`` in
        put order (latents without examples are absent). ``tokens=False`` leaves token ids empty
        (a report shows only the strings), which skips a third of the decoding."""
        cols = "source, idx, kind, str_tokens, activations" + (", tokens" if tokens else "")
        out: dict[LatentRef, list[Example]] = {}
        for rows in self._latent_rows("SELECT * FROM example_sets", run_id, latents, "idx"):
            for r in rows:
                out[LatentRef(r["source"], r["idx"])] = self._set_examples(run_id, r, tokens)
        loads = _loads
        group: list[Example] = []
        legacy = [ref for ref in latents if ref not in out]  # written before example sets
        for rows in self._latent_rows(f"SELECT {cols} FROM examples", run_id, legacy, "rank"):
            ref = None
            for r in rows:
                if ref is None or ref.index != r[1] or ref.source != r[0]:
                    ref = LatentRef(r[0], r[1])
                    group = out.setdefault(ref, [])
                ids = tuple(loads(r[5])) if tokens else ()
                group.append(Example(ids, tuple(loads(r[3])), tuple(loads(r[4])), r[2]))
        return out

    def _latent_rows(
        self, select: str, run_id: int, latents: Sequence[LatentRef], order: str, alias: str = ""
    ) -> Iterator[list[sqlite3.Row]]:
        """Rows of ``select`` for these latents: one primary-key range read per source (from the
        smallest to the largest index asked), ordered by index then ``order``, keeping only the
        latents asked for."""
        by_source: dict[str, set[int]] = {}
        for ref in latents:
            by_source.setdefault(ref.source, set()).add(ref.index)
        a = f"{alias}." if alias else ""
        for source in sorted(by_source):
            wanted = by_source[source]
            rows = self._query(
                f"{select} WHERE {a}run_id = ? AND {a}source = ? AND {a}idx BETWEEN ? AND ? "
                f"ORDER BY {a}idx, {order}",
                (run_id, source, min(wanted), max(wanted)),
            )
            yield [r for r in rows if r["idx"] in wanted]

    # explanations

    def put_explanation(self, run_id: int, explanation: Explanation) -> None:
        """Insert or replace the explanation of (run, latent, explainer)."""
        e = explanation
        meta = _dumps(e.meta, f"meta of explanation {e.latent}")
        with self._write() as conn:
            prov = self._provenance_id(conn, e.provenance)
            conn.execute(
                "INSERT OR REPLACE INTO explanations "
                "(run_id, source, idx, explainer, text, meta, created_at, provenance_id) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    run_id,
                    e.latent.source,
                    e.latent.index,
                    e.explainer,
                    e.text,
                    meta,
                    time.time(),
                    prov,
                ),
            )

    def _provenance_id(self, conn: sqlite3.Connection, data: Mapping[str, Any]) -> int | None:
        """The id of this provenance record (inserted once; None for an empty one)."""
        if not data:
            return None
        text = _dumps(dict(data), "provenance")
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
        known = self._provenance_ids.get(digest)
        if known is not None:
            return known
        conn.execute(
            "INSERT OR IGNORE INTO provenance (digest, data) VALUES (?, ?)", (digest, text)
        )
        (pid,) = conn.execute("SELECT id FROM provenance WHERE digest = ?", (digest,)).fetchone()
        self._provenance_ids[digest] = int(pid)
        return int(pid)

    def get_explanation(self, run_id: int, latent: LatentRef, explainer: str) -> Explanation | None:
        """The stored explanation, or None."""
        rows = self._query(
            _EXPLANATIONS + " WHERE e.run_id = ? AND e.source = ? AND e.idx = ? "
            "AND e.explainer = ?",
            (run_id, latent.source, latent.index, explainer),
        )
        return _explanation(rows[0]) if rows else None

    def has_explanation(self, run_id: int, latent: LatentRef, explainer: str) -> bool:
        """Whether (run, latent, explainer) is already explained."""
        return bool(
            self._query(
                "SELECT 1 FROM explanations WHERE run_id = ? AND source = ? AND idx = ? "
                "AND explainer = ?",
                (run_id, latent.source, latent.index, explainer),
            )
        )

    def explained(self, run_id: int, explainer: str) -> LatentIds:
        """The latents this explainer has already explained in this run (for resuming in bulk)."""
        sql = "SELECT source, idx FROM explanations WHERE run_id = ? AND explainer = ?"
        return self._latent_ids(sql, (run_id, explainer))

    def _latent_ids(
        self, sql: str, params: Sequence[Any], keep: Callable[[Any], bool] | None = None
    ) -> LatentIds:
        """The (source, idx) rows of ``sql`` (whose third column, if any, ``keep`` accepts) as a
        compact set, from the cursor: no Python object per latent is kept."""
        groups: dict[str, array[int]] = {}  # 8 bytes an index while reading, not a Python int
        with self._lock:
            for row in self._conn.execute(sql, params):
                if keep is None or keep(row[2]):
                    groups.setdefault(row[0], array("q")).append(row[1])
        return LatentIds.from_indices(groups)

    def explanations(self, run_id: int, explainer: str | None = None) -> list[Explanation]:
        """A run's explanations (of one explainer if given), ordered by latent and explainer."""
        sql = _EXPLANATIONS + " WHERE e.run_id = ?"
        params: list[Any] = [run_id]
        if explainer is not None:
            sql += " AND e.explainer = ?"
            params.append(explainer)
        rows = self._query(sql + " ORDER BY e.source, e.idx, e.explainer", params)
        return [_explanation(r) for r in rows]

    def iter_explanations(
        self, run_id: int, explainer: str | None = None, page: int = 512
    ) -> Iterator[Explanation]:
        """A run's explanations (of one explainer if given) as :meth:`explanations` orders them,
        read ``page`` at a time: memory holds a page, not the run (the score stage's and the
        export's source)."""
        if explainer is not None:
            where, keys = "e.explainer = ? AND (e.source, e.idx) > (?, ?)", ("source", "idx")
        else:
            where = "(e.source, e.idx, e.explainer) > (?, ?, ?)"
            keys = ("source", "idx", "explainer")
        order = ", ".join(f"e.{k}" for k in keys)
        params: tuple[Any, ...] = (explainer,) if explainer is not None else ()
        yield from self._pages(
            _EXPLANATIONS + f" WHERE e.run_id = ? AND {where} ORDER BY {order} LIMIT ?",
            run_id, params, keys, page, _explanation,
        )  # fmt: skip

    def _pages(
        self,
        sql: str,
        run_id: int,
        params: tuple[Any, ...],
        keys: tuple[str, ...],
        page: int,
        make: Any,
    ) -> Iterator[Any]:
        """Keyset paging: ``sql`` takes ``run_id``, ``params``, the last row's ``keys`` and a
        limit; rows are read ``page`` at a time and yielded through ``make``."""
        after: tuple[Any, ...] = ("", -1) + ("",) * (len(keys) - 2)
        while True:
            rows = self._query(sql, (run_id, *params, *after, page))
            yield from (make(r) for r in rows)
            if len(rows) < page:
                return
            after = tuple(rows[-1][k] for k in keys)

    def latent_explanations(
        self, run_id: int, latents: Sequence[LatentRef]
    ) -> dict[LatentRef, list[Explanation]]:
        """The explanations of several latents with their provenance, ``{latent: [by explainer
        name]}`` (latents without any are absent), read in one range query per source."""
        out: dict[LatentRef, list[Explanation]] = {}
        for rows in self._latent_rows(_EXPLANATIONS, run_id, latents, "e.explainer", "e"):
            for r in rows:
                e = _explanation(r)
                out.setdefault(e.latent, []).append(e)
        return out

    def explainer_names(self, run_id: int) -> list[str]:
        """The explainers that explained latents in this run, sorted."""
        rows = self._query(
            "SELECT DISTINCT explainer FROM explanations WHERE run_id = ? ORDER BY explainer",
            (run_id,),
        )
        return [r["explainer"] for r in rows]

    # failures

    def put_failure(
        self, run_id: int, latent: LatentRef, stage: str, component: str, reason: str
    ) -> None:
        """Record that ``component`` (an explainer, a scorer ...) gave up on ``latent`` in
        ``stage`` (``"explain"``, ``"score"`` ...), replacing an earlier failure of the same."""
        with self._write() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO failures "
                "(run_id, source, idx, stage, component, reason, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (run_id, latent.source, latent.index, stage, component, reason, time.time()),
            )

    def clear_failure(self, run_id: int, latent: LatentRef, stage: str, component: str) -> None:
        """Forget a failure (a retry succeeded)."""
        with self._write() as conn:
            conn.execute(_CLEAR_FAILURE, (run_id, latent.source, latent.index, stage, component))

    def progress_counts(self, run_id: int) -> ProgressCounts:
        """How far a run is, counted in SQL (no record is read or decoded: fast at any size):
        its latents, explanations per explainer, scores per ``scorer/explainer`` and failures
        per stage and component."""

        def rows(sql: str) -> list[sqlite3.Row]:
            return self._query(sql, (run_id,))

        if self._counted:
            kept: dict[str, Counter[str]] = {}
            for kind, component, n in rows(
                "SELECT kind, component, n FROM progress WHERE run_id = ? AND n != 0"
            ):
                kept.setdefault(kind, Counter())[component] = n
            return ProgressCounts(
                kept.get("latents", Counter())[""],
                kept.get("explained", Counter()),
                kept.get("scored", Counter()),
                {s: kept.get(f"failed:{s}", Counter()) for s in ("explain", "score")},
            )
        latents = rows("SELECT COUNT(*) FROM latents WHERE run_id = ?")[0][0]
        explained = Counter(
            {e: n for e, n in rows(
                "SELECT explainer, COUNT(*) FROM explanations WHERE run_id = ? GROUP BY explainer"
            )}
        )  # fmt: skip
        scored = Counter(
            {f"{s}/{e}": n for s, e, n in rows(
                "SELECT scorer, explainer, COUNT(*) FROM scores WHERE run_id = ? "
                "GROUP BY scorer, explainer"
            )}
        )  # fmt: skip
        failed: dict[str, Counter[str]] = {"explain": Counter(), "score": Counter()}
        for stage, component, n in rows(
            "SELECT stage, component, COUNT(*) FROM failures WHERE run_id = ? "
            "GROUP BY stage, component"
        ):
            if stage in failed:
                failed[stage][component] = n
        return ProgressCounts(int(latents), explained, scored, failed)

    def failures(self, run_id: int, stage: str | None = None) -> dict[tuple[LatentRef, str], str]:
        """``{(latent, component): reason}`` for a run's failures (of one stage if given)."""
        sql = "SELECT source, idx, component, reason FROM failures WHERE run_id = ?"
        params: list[Any] = [run_id]
        if stage is not None:
            sql += " AND stage = ?"
            params.append(stage)
        return {
            (LatentRef(r["source"], r["idx"]), r["component"]): r["reason"]
            for r in self._query(sql + " ORDER BY source, idx, component", params)
        }

    # scores

    def put_score(self, run_id: int, score: Score, *, clears: str | None = None) -> None:
        """Insert or replace the score of (run, latent, explainer, scorer); ``clears``: a
        component (``scorer/explainer``) whose score-stage failure of the latent is forgotten in
        the same transaction (:meth:`clear_failure`: a retry succeeded).

        A NaN ``value`` cannot be told from None in SQLite, so it reads back as None.
        """
        s = score
        value = None if s.value is None or math.isnan(s.value) else float(s.value)
        predictions = [
            {
                "example_id": p.example_id,
                "predicted": p.predicted,
                "actual": p.actual,
                "probability": p.probability,
                **({} if p.quantile is None else {"quantile": p.quantile}),
            }
            for p in s.predictions
        ]
        row = (
            run_id,
            s.latent.source,
            s.latent.index,
            s.explainer,
            s.scorer,
            value,
            _dumps(s.metrics, f"metrics of score {s.latent}"),
            pack_json(predictions, f"predictions of score {s.latent}"),
            s.n_failures,
            _dumps(s.meta, f"meta of score {s.latent}"),
            time.time(),
        )
        with self._write() as conn:
            prov = self._provenance_id(conn, s.provenance)
            conn.execute(
                "INSERT OR REPLACE INTO scores (run_id, source, idx, explainer, scorer, value, "
                "metrics, predictions, n_failures, meta, created_at, provenance_id) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (*row, prov),
            )
            if clears is not None:
                conn.execute(
                    _CLEAR_FAILURE, (run_id, s.latent.source, s.latent.index, "score", clears)
                )

    def get_score(
        self, run_id: int, latent: LatentRef, explainer: str, scorer: str
    ) -> Score | None:
        """The stored score, or None."""
        rows = self._query(
            _SCORES + " WHERE s.run_id = ? AND s.source = ? AND s.idx = ? AND s.explainer = ? "
            "AND s.scorer = ?",
            (run_id, latent.source, latent.index, explainer, scorer),
        )
        return _score(rows[0]) if rows else None

    def has_score(self, run_id: int, latent: LatentRef, explainer: str, scorer: str) -> bool:
        """Whether (run, latent, explainer, scorer) is already scored."""
        return bool(
            self._query(
                "SELECT 1 FROM scores WHERE run_id = ? AND source = ? AND idx = ? "
                "AND explainer = ? AND scorer = ?",
                (run_id, latent.source, latent.index, explainer, scorer),
            )
        )

    def scored(
        self,
        run_id: int,
        explainer: str,
        scorer: str,
        where: Mapping[str, Any] | None = None,
    ) -> LatentIds:
        """The latents whose ``explainer`` explanation ``scorer`` has already scored in this run;
        with ``where``, only scores whose provenance has these values (e.g. the scorer's options
        hash: a score made with other options does not count as done)."""
        # provenance ids, not their JSON: a run has a handful of provenances and many scores
        params = (run_id, explainer, scorer)
        wanted = dict(where or {})
        matches: dict[int | None, bool] = {}
        for (pid,) in self._query(
            "SELECT DISTINCT provenance_id FROM scores "
            "WHERE run_id = ? AND explainer = ? AND scorer = ?",
            params,
        ):
            found = self._query("SELECT data FROM provenance WHERE id = ?", (pid,))
            prov = json.loads(found[0][0]) if found and found[0][0] else {}
            matches[pid] = all(prov.get(k) == v for k, v in wanted.items())
        sql = (
            "SELECT source, idx, provenance_id FROM scores "
            "WHERE run_id = ? AND explainer = ? AND scorer = ?"
        )
        return self._latent_ids(sql, params, matches.__getitem__)

    def scores(self, run_id: int, scorer: str | None = None) -> list[Score]:
        """A run's scores (of one scorer if given), ordered by latent, explainer and scorer."""
        sql = _SCORES + " WHERE s.run_id = ?"
        params: list[Any] = [run_id]
        if scorer is not None:
            sql += " AND s.scorer = ?"
            params.append(scorer)
        rows = self._query(sql + " ORDER BY s.source, s.idx, s.explainer, s.scorer", params)
        return [_score(r) for r in rows]

    def iter_scores(self, run_id: int, page: int = 512) -> Iterator[Score]:
        """A run's scores as :meth:`scores` orders them, read ``page`` at a time (the export's
        source: memory holds a page, not the run)."""
        keys = ("source", "idx", "explainer", "scorer")
        yield from self._pages(
            _SCORES + " WHERE s.run_id = ? AND (s.source, s.idx, s.explainer, s.scorer) > "
            "(?, ?, ?, ?) ORDER BY s.source, s.idx, s.explainer, s.scorer LIMIT ?",
            run_id, (), keys, page, _score,
        )  # fmt: skip

    def latent_scores(
        self, run_id: int, latents: Sequence[LatentRef]
    ) -> dict[LatentRef, list[Score]]:
        """The scores of several latents with their provenance, ``{latent: [by explainer, then
        scorer]}`` (latents without any are absent), read in one range query per source."""
        out: dict[LatentRef, list[Score]] = {}
        for rows in self._latent_rows(_SCORES, run_id, latents, "s.explainer, s.scorer", "s"):
            for r in rows:
                s = _score(r)
                out.setdefault(s.latent, []).append(s)
        return out

    def score_values(
        self, run_id: int, scorer: str | None = None, explainer: str | None = None
    ) -> list[tuple[LatentRef, str, str, float | None]]:
        """``(latent, scorer, explainer, value)`` of a run's scores (of one scorer / explainer if
        given), ordered by latent, explainer and scorer: the headline values alone, without
        decoding metrics, predictions or provenance (what comparisons and plots need)."""
        return [
            (LatentRef(src, idx), sc, ex, v)
            for src, idx, sc, ex, v in self.iter_score_values(run_id, scorer, explainer)
        ]

    def iter_score_values(
        self, run_id: int, scorer: str | None = None, explainer: str | None = None
    ) -> Iterator[tuple[str, int, str, str, float | None]]:
        """:meth:`score_values` as plain ``(source, idx, scorer, explainer, value)`` tuples from
        the cursor, a page at a time: a reader of a million scores keeps what it needs only."""
        sql = "SELECT source, idx, scorer, explainer, value FROM scores WHERE run_id = ?"
        params: list[Any] = [run_id]
        if scorer is not None:
            sql += " AND scorer = ?"
            params.append(scorer)
        if explainer is not None:
            sql += " AND explainer = ?"
            params.append(explainer)
        sql += " ORDER BY source, idx, explainer, scorer"
        return self._iter_query(sql, params, plain=True)

    def score_keys(self, run_id: int) -> list[tuple[str, str]]:
        """The distinct (explainer, scorer) pairs that scored in this run, sorted."""
        rows = self._query(
            "SELECT DISTINCT explainer, scorer FROM scores WHERE run_id = ? "
            "ORDER BY explainer, scorer",
            (run_id,),
        )
        return [(r["explainer"], r["scorer"]) for r in rows]

    # LLM calls

    def put_llm_call(
        self, call: LLMCall, run_id: int | None = None, *, cached: bool = False
    ) -> None:
        """Record one LLM call in the ledger and, if paid (``cached=False``), in the cache.

        A paid call stores (or refreshes) the cached response under ``call.request_hash``; a cache
        hit (``cached=True``) only adds a ledger row with no tokens, cost or latency.
        """
        self.put_llm_calls([(call, run_id, cached)])

    def put_llm_calls(self, calls: Iterable[tuple[LLMCall, int | None, bool]]) -> None:
        """Record many ``(call, run_id, cached)`` as :meth:`put_llm_call` does, in one
        transaction: all of them are committed when this returns, or none is. A group commit
        for many requests answered at once (one commit costs more than the rows it writes)."""
        now = time.time()
        # compressed before the transaction: the store's lock is held only to write
        rows = [
            (call, run_id, cached, None if cached else _packed_call(call))
            for call, run_id, cached in calls
        ]
        with self._write() as conn:
            for call, run_id, cached, packed in rows:
                _insert_llm_call(conn, call, run_id, cached, now, packed)

    def get_llm_call(self, request_hash: str) -> LLMCall | None:
        """The cached call with this request hash, or None; its request and response decoded
        (whether stored compressed or, by an older version, as JSON text)."""
        rows = self._query("SELECT * FROM llm_calls WHERE request_hash = ?", (request_hash,))
        if not rows:
            return None
        r = rows[0]
        try:
            request, response = unpack_json(r["request"]), unpack_json(r["response"])
        except StoreError as exc:
            raise StoreError(f"LLM call {request_hash[:12]}... in {self.path}: {exc}") from None
        return LLMCall(
            request_hash=r["request_hash"],
            client=r["client"],
            model=r["model"],
            request=request,
            response=response,
            prompt_tokens=r["prompt_tokens"],
            cached_tokens=r["cached_tokens"],
            completion_tokens=r["completion_tokens"],
            cost_usd=r["cost_usd"],
            latency_s=r["latency_s"],
        )

    def _ledger_ready(self) -> None:
        """Read-only on an older schema: infer who paid for each ledger row (as the migration
        would) into a temporary table, once, on the first read of the ledger."""
        with self._lock:
            if self._payers_pending:
                self._conn.execute(f"INSERT OR IGNORE INTO temp.ledger_payers {_PAYERS}")
                self._payers_pending = False

    def ledger(self, run_id: int | None = None) -> list[LedgerEntry]:
        """The ledger rows of one run (else of the whole store), in the order they were made,
        with the client and model of the cached call."""
        self._ledger_ready()
        sql = (
            "SELECT l.at, COALESCE(c.client, ''), COALESCE(c.model, ''), l.cached, "
            "l.prompt_tokens, l.cached_tokens, l.completion_tokens, l.cost_usd, l.latency_s, "
            "l.request_hash, l.stage, l.component FROM llm_ledger l "
            "LEFT JOIN llm_calls c ON c.request_hash = l.request_hash"
        )
        params: tuple[Any, ...] = ()
        if run_id is not None:
            sql += " WHERE l.run_id = ?"
            params = (run_id,)
        rows = self._query(sql + " ORDER BY l.id", params)
        return [LedgerEntry(r[0], r[1], r[2], bool(r[3]), *tuple(r)[4:]) for r in rows]

    def usage_by_component(self, run_id: int | None = None) -> dict[tuple[str, str], Usage]:
        """:meth:`usage` per ``(stage, component)`` that asked (``("", "")``: calls whose
        asker is not known), sorted by stage and component."""
        self._ledger_ready()
        if self._counted:  # kept by triggers: a few rows, whatever the size of the ledger
            sql = (
                "SELECT stage, component, SUM(calls), SUM(cache_hits), SUM(prompt_tokens), "
                "SUM(cached_tokens), SUM(completion_tokens), SUM(cost_usd), SUM(latency_s) "
                "FROM ledger_totals WHERE calls + cache_hits > 0"
            )
            where = " AND run_id = ?"
        else:
            sql = (
                "SELECT stage, component, SUM(1 - cached), SUM(cached), SUM(prompt_tokens), "
                "SUM(cached_tokens), SUM(completion_tokens), SUM(cost_usd), SUM(latency_s) "
                "FROM llm_ledger"
            )
            where = " WHERE run_id = ?"
        params: tuple[Any, ...] = ()
        if run_id is not None:
            sql += where
            params = (run_id,)
        rows = self._query(sql + " GROUP BY stage, component ORDER BY stage, component", params)
        return {
            (r[0], r[1]): Usage(
                int(r[2]), int(r[3]), int(r[4]), int(r[5]), int(r[6]), float(r[7]), float(r[8])
            )
            for r in rows
        }

    def usage(self, run_id: int | None = None) -> Usage:
        """LLM usage totals from the ledger, of one run if given, else of the whole store."""
        sql = (
            "SELECT COALESCE(SUM(1 - cached), 0), COALESCE(SUM(cached), 0), "
            "COALESCE(SUM(prompt_tokens), 0), COALESCE(SUM(cached_tokens), 0), "
            "COALESCE(SUM(completion_tokens), 0), COALESCE(SUM(cost_usd), 0.0), "
            "COALESCE(SUM(latency_s), 0.0) FROM llm_ledger"
        )
        params: tuple[Any, ...] = ()
        if run_id is not None:
            sql += " WHERE run_id = ?"
            params = (run_id,)
        r = self._query(sql, params)[0]
        return Usage(
            calls=int(r[0]),
            cache_hits=int(r[1]),
            prompt_tokens=int(r[2]),
            cached_tokens=int(r[3]),
            completion_tokens=int(r[4]),
            cost_usd=float(r[5]),
            latency_s=float(r[6]),
        )

    # LLM batches

    def put_llm_batch(
        self,
        batch: LLMBatch,
        requests: Mapping[str, Mapping[str, Any]],
        payers: Mapping[str, tuple[str, str]] | None = None,
    ) -> None:
        """Record a submitted batch and the requests it holds (``{request hash: request
        payload}``; the payload is kept until the batch ends, so its answers can be stored even
        by a process that never saw the request) and who asked for each (``{request hash:
        (stage, component)}``, for the ledger)."""
        payers = payers or {}
        with self._write() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO llm_batches (id, client, endpoint, status, input_file_id, "
                "output_file_id, error_file_id, meta, n_requests, run_id, created_at, updated_at, "
                "ended_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    batch.id,
                    batch.client,
                    batch.endpoint,
                    batch.status,
                    batch.input_file_id,
                    batch.output_file_id,
                    batch.error_file_id,
                    _dumps(batch.meta, f"meta of batch {batch.id}"),
                    batch.n_requests,
                    batch.run_id,
                    batch.created_at,
                    batch.updated_at,
                    batch.ended_at,
                ),
            )
            conn.executemany(
                "INSERT OR REPLACE INTO llm_batch_requests (batch_id, request_hash, request, "
                "stage, component) VALUES (?, ?, ?, ?, ?)",
                [
                    (batch.id, h, pack_json(dict(p)), *payers.get(h, ("", "")))
                    for h, p in requests.items()
                ],
            )

    def update_llm_batch(
        self,
        batch_id: str,
        status: str,
        *,
        output_file_id: str | None = None,
        error_file_id: str | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> None:
        """A live batch's new status (and its files or details once the provider has them)."""
        with self._write() as conn:
            conn.execute(
                "UPDATE llm_batches SET status = ?, output_file_id = COALESCE(?, output_file_id), "
                "error_file_id = COALESCE(?, error_file_id), meta = COALESCE(?, meta), "
                "updated_at = ? WHERE id = ?",
                (
                    status,
                    output_file_id,
                    error_file_id,
                    None if meta is None else _dumps(dict(meta), f"meta of batch {batch_id}"),
                    time.time(),
                    batch_id,
                ),
            )

    def end_llm_batch(self, batch_id: str, status: str, outcomes: Mapping[str, str]) -> None:
        """Mark a batch ended once its answers are stored: its final status and, per request
        hash, ``"answered"`` or why not; the request payloads are dropped (answered ones live
        on in the LLM cache)."""
        now = time.time()
        with self._write() as conn:
            conn.execute(
                "UPDATE llm_batches SET status = ?, ended_at = ?, updated_at = ? WHERE id = ?",
                (status, now, now, batch_id),
            )
            conn.executemany(
                "UPDATE llm_batch_requests SET outcome = ?, request = NULL "
                "WHERE batch_id = ? AND request_hash = ?",
                [(outcome, batch_id, h) for h, outcome in outcomes.items()],
            )

    def llm_batches(
        self, client: str | None = None, endpoint: str | None = None, *, live: bool | None = None
    ) -> list[LLMBatch]:
        """Batches (of one client and endpoint if given; ``live``: only those not ended, or
        with False only ended ones), oldest first."""
        sql, params = "SELECT * FROM llm_batches WHERE 1", []
        for column, value in (("client", client), ("endpoint", endpoint)):
            if value is not None:
                sql += f" AND {column} = ?"
                params.append(value)
        if live is not None:
            sql += " AND ended_at IS NULL" if live else " AND ended_at IS NOT NULL"
        return [_llm_batch(r) for r in self._query(sql + " ORDER BY created_at, id", params)]

    def llm_batch_requests(self, batch_id: str) -> dict[str, dict[str, Any] | None]:
        """``{request hash: request payload}`` of a batch (None once the batch has ended)."""
        rows = self._query(
            "SELECT request_hash, request FROM llm_batch_requests WHERE batch_id = ?", (batch_id,)
        )
        return {r[0]: (unpack_json(r[1]) if r[1] is not None else None) for r in rows}

    def llm_batch_payers(self, batch_id: str) -> dict[str, tuple[str, str]]:
        """``{request hash: (stage, component)}``: who asked for each request of a batch."""
        rows = self._query(
            "SELECT request_hash, stage, component FROM llm_batch_requests WHERE batch_id = ?",
            (batch_id,),
        )
        return {r[0]: (r[1], r[2]) for r in rows}

    def llm_batch_outcomes(self, batch_id: str) -> dict[str, str | None]:
        """``{request hash: outcome}`` of a batch (None while it is live)."""
        rows = self._query(
            "SELECT request_hash, outcome FROM llm_batch_requests WHERE batch_id = ?", (batch_id,)
        )
        return {r[0]: r[1] for r in rows}

    def live_llm_batch_of(self, request_hash: str, client: str, endpoint: str) -> str | None:
        """The id of a live batch of this client and endpoint holding this request, or None."""
        rows = self._query(
            "SELECT b.id FROM llm_batch_requests r JOIN llm_batches b ON b.id = r.batch_id "
            "WHERE r.request_hash = ? AND b.client = ? AND b.endpoint = ? "
            "AND b.ended_at IS NULL LIMIT 1",
            (request_hash, client, endpoint),
        )
        return rows[0][0] if rows else None

    def llm_batch_attempts(self, request_hash: str) -> int:
        """How many batches this request was submitted in (live or ended)."""
        rows = self._query(
            "SELECT COUNT(*) FROM llm_batch_requests WHERE request_hash = ?", (request_hash,)
        )
        return int(rows[0][0])


def _packed_call(call: LLMCall) -> tuple[bytes, bytes]:
    """The ``llm_calls`` columns of a paid call's request and response."""
    return pack_json(call.request, "LLM request"), pack_json(call.response, "LLM response")


def _insert_llm_call(
    conn: sqlite3.Connection,
    call: LLMCall,
    run_id: int | None,
    cached: bool,
    now: float,
    packed: tuple[bytes, bytes] | None = None,
) -> None:
    """One ledger row and (paid) the cached call; ``packed``: its request and response as
    :func:`_packed_call` writes them, if already made."""
    if cached:
        exists = conn.execute(
            "SELECT 1 FROM llm_calls WHERE request_hash = ?", (call.request_hash,)
        ).fetchone()
        if not exists:
            raise StoreError(
                f"cache hit recorded for request {call.request_hash[:12]}... that is not "
                "in the cache; record the paid call with cached=False"
            )
        conn.execute(
            "INSERT INTO llm_ledger (request_hash, run_id, cached, prompt_tokens, "
            "cached_tokens, completion_tokens, cost_usd, latency_s, at, stage, component) "
            "VALUES (?, ?, 1, 0, 0, 0, 0.0, 0.0, ?, ?, ?)",
            (call.request_hash, run_id, now, call.stage, call.component),
        )
        return
    usage = (
        call.prompt_tokens,
        call.cached_tokens,
        call.completion_tokens,
        call.cost_usd,
        call.latency_s,
    )
    conn.execute(
        "INSERT OR REPLACE INTO llm_calls (request_hash, client, model, request, response, "
        "prompt_tokens, cached_tokens, completion_tokens, cost_usd, latency_s, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            call.request_hash,
            call.client,
            call.model,
            *(packed or _packed_call(call)),
            *usage,
            now,
        ),
    )
    conn.execute(
        "INSERT INTO llm_ledger (request_hash, run_id, cached, prompt_tokens, "
        "cached_tokens, completion_tokens, cost_usd, latency_s, at, stage, component) "
        "VALUES (?, ?, 0, ?, ?, ?, ?, ?, ?, ?, ?)",
        (call.request_hash, run_id, *usage, now, call.stage, call.component),
    )


_scan = json.JSONDecoder().scan_once


def _grown(table: Any, size: int) -> Any:
    """An object array of at least ``size`` entries holding ``table``'s (new ones None)."""
    import numpy as np

    if size <= len(table):
        return table
    return np.concatenate([table, np.full(size - len(table), None, dtype=object)])


def _example_set_row(run_id: int, x: ExampleSet) -> tuple[Any, ...]:
    """The ``example_sets`` row of ``x``: token ids in the narrowest integer type that holds
    them, activations in float16 when that loses nothing (the cache stores float16), else
    float32; both little-endian."""
    import numpy as np

    ids = np.asarray(x.tokens)
    token_dtype = "<u2" if not ids.size or (ids.min() >= 0 and ids.max() < 1 << 16) else "<i4"
    acts = np.asarray(x.activations, dtype=np.float32)
    half = acts.astype("<f2")
    exact = np.array_equal(half.astype(np.float32), acts)
    n, width = ids.shape
    return (
        run_id, x.latent.source, x.latent.index, json.dumps(list(x.kinds)), n, width,
        token_dtype, ids.astype(token_dtype).tobytes(),
        "<f2" if exact else "<f4", (half if exact else acts.astype("<f4")).tobytes(),
    )  # fmt: skip


@functools.lru_cache(maxsize=4096)  # a few kinds ("quantile:3", "random" ...) in every set
def _role(kind: str) -> str:
    """The role of an example of this kind (:attr:`Example.role`'s own rule)."""
    return Example((), (), (), kind).role


def _loads(text: str) -> Any:
    """``json.loads`` of a column this store wrote with ``json.dumps`` (no surrounding
    whitespace): the C scanner alone, without the per-call wrapper and whitespace regexes,
    which cost as much as the parse on short token lists."""
    try:
        value, end = _scan(text, 0)
    except StopIteration as exc:
        raise StoreError(f"corrupt JSON column in results store: {text[:40]!r}") from exc
    if end != len(text):
        return json.loads(text)  # trailing text: let json report it precisely
    return value


def _check_version(version: int, path: Path) -> None:
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"results store {path} has schema version {version} but this autointerp knows only "
            f"up to {SCHEMA_VERSION}; upgrade autointerp or use a new run directory"
        )


#: how a read-only store shows a column that a migration adds and an older file lacks, when
#: not by its DEFAULT (``t``: the table's row; ``temp.ledger_payers``: see ``_ledger_ready``)
_READ_COLUMNS = {
    ("llm_ledger", col): (
        f"COALESCE((SELECT p.{col} FROM temp.ledger_payers p WHERE p.run_id = t.run_id "
        f"AND p.request_hash = t.request_hash), '')"
    )
    for col in ("stage", "component")
}

_CREATE_TABLE = re.compile(r"\s*CREATE TABLE (\w+)", re.IGNORECASE)
_ADD_COLUMN = re.compile(
    r"\s*ALTER TABLE (\w+) ADD COLUMN (\w+)(?:.*?\bDEFAULT\s+('(?:[^']|'')*'|[^\s,]+))?",
    re.IGNORECASE | re.DOTALL,
)


def _read_shims(conn: sqlite3.Connection, version: int) -> bool:
    """Make a read-only connection to a store of an older ``version`` read like the latest
    schema, writing nothing to the file: tables it lacks become empty temporary tables, columns
    it lacks come from temporary views of the same name (which SQLite resolves before the
    file's tables), with their DEFAULT or what :data:`_READ_COLUMNS` says. Indexes and data
    fixes are skipped. Returns whether the ledger's payers are to be inferred (on first read)."""
    if version >= SCHEMA_VERSION:
        return False
    temp: set[str] = set()
    added: dict[str, list[tuple[str, str]]] = {}
    for statements in MIGRATIONS[version:]:
        for statement in statements:
            if m := _CREATE_TABLE.match(statement):
                conn.execute(_CREATE_TABLE.sub(r"CREATE TEMP TABLE \1", statement, count=1))
                temp.add(m.group(1))
            elif (m := _ADD_COLUMN.match(statement)) and m.group(1) in temp:
                conn.execute(statement)  # onto the temporary table made above
            elif m:
                table, column = m.group(1), m.group(2)
                read = _READ_COLUMNS.get((table, column), m.group(3) or "NULL")
                added.setdefault(table, []).append((column, read))
            # indexes and data fixes (UPDATE): nothing to read differently
    payers = any((table, c) in _READ_COLUMNS for table, cols in added.items() for c, _ in cols)
    if payers:
        conn.execute(
            "CREATE TEMP TABLE ledger_payers (run_id INTEGER, request_hash TEXT, stage TEXT, "
            "component TEXT, PRIMARY KEY (run_id, request_hash))"
        )
    for table, columns in added.items():
        extra = ", ".join(f"{read} AS {column}" for column, read in columns)
        conn.execute(f"CREATE TEMP VIEW {table} AS SELECT t.*, {extra} FROM main.{table} t")
    return payers


def _migrate(conn: sqlite3.Connection, path: Path, target: int = SCHEMA_VERSION) -> None:
    """Apply ``MIGRATIONS`` from the file's version up to ``target`` in one transaction."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        _check_version(version, path)
        for v in range(version, target):
            for statement in MIGRATIONS[v]:
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {v + 1}")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _run(r: sqlite3.Row) -> RunRecord:
    return RunRecord(
        id=r["id"],
        name=r["name"],
        config=json.loads(r["config"]),
        status=r["status"],
        started_at=r["started_at"],
        finished_at=r["finished_at"],
    )


#: explanations and scores with their provenance (an empty dict when none was recorded)
_EXPLANATIONS = (
    "SELECT e.*, p.data AS provenance FROM explanations e "
    "LEFT JOIN provenance p ON p.id = e.provenance_id"
)
_SCORES = (
    "SELECT s.*, p.data AS provenance FROM scores s "
    "LEFT JOIN provenance p ON p.id = s.provenance_id"
)


def _provenance(r: sqlite3.Row) -> dict[str, Any]:
    data = r["provenance"] if "provenance" in r.keys() else None  # noqa: SIM118
    return json.loads(data) if data else {}


def _latent_stats(r: sqlite3.Row) -> LatentStats:
    ref = LatentRef(r["source"], r["idx"])
    return LatentStats(ref, r["frequency"], r["max_activation"], json.loads(r["extra"]))


def _explanation(r: sqlite3.Row) -> Explanation:
    return Explanation(
        latent=LatentRef(r["source"], r["idx"]),
        text=r["text"],
        explainer=r["explainer"],
        meta=json.loads(r["meta"]),
        provenance=_provenance(r),
    )


def _score(r: sqlite3.Row) -> Score:
    return Score(
        latent=LatentRef(r["source"], r["idx"]),
        scorer=r["scorer"],
        explainer=r["explainer"],
        value=r["value"],
        metrics=json.loads(r["metrics"]),
        predictions=tuple(
            Prediction(**p) for p in unpack_json(r["predictions"], "score's predictions")
        ),
        n_failures=r["n_failures"],
        meta=json.loads(r["meta"]),
        provenance=_provenance(r),
    )


def _llm_batch(r: sqlite3.Row) -> LLMBatch:
    return LLMBatch(
        id=r["id"],
        client=r["client"],
        endpoint=r["endpoint"],
        status=r["status"],
        n_requests=r["n_requests"],
        created_at=r["created_at"],
        updated_at=r["updated_at"],
        input_file_id=r["input_file_id"],
        output_file_id=r["output_file_id"],
        error_file_id=r["error_file_id"],
        meta=json.loads(r["meta"]),
        run_id=r["run_id"],
        ended_at=r["ended_at"],
    )


class RunStore:
    """One run of a :class:`Store`: its run-scoped methods without the ``run_id`` argument, and
    an LLM call store (``get_llm_call``/``put_llm_call``) that files calls under this run. What
    the pipeline hands its stages: ``Store.bind(run_id)``."""

    def __init__(self, store: Store, run_id: int) -> None:
        self.store = store
        self.run_id = run_id

    def put_latents(self, source: str, rows: Iterable[Mapping[str, Any]]) -> None:
        self.store.put_latents(self.run_id, source, rows)

    def latents(self, source: str | None = None) -> list[LatentStats]:
        return self.store.latents(self.run_id, source)

    def latent_ids(self) -> LatentIds:
        return self.store.latent_ids(self.run_id)

    def progress_counts(self) -> ProgressCounts:
        return self.store.progress_counts(self.run_id)

    def put_examples(self, latent: LatentRef, examples: Sequence[Example]) -> None:
        self.store.put_examples(self.run_id, latent, examples)

    def put_example_sets(self, sets: Sequence[ExampleSet], strings: Mapping[int, str]) -> None:
        self.store.put_example_sets(self.run_id, sets, strings)

    def examples(
        self, latent: LatentRef, kind: str | None = None, *, roles: Sequence[str] | None = None
    ) -> list[Example]:
        return self.store.examples(self.run_id, latent, kind, roles=roles)

    def put_explanation(self, explanation: Explanation) -> None:
        self.store.put_explanation(self.run_id, explanation)

    def explained(self, explainer: str) -> LatentIds:
        return self.store.explained(self.run_id, explainer)

    def explanations(self, explainer: str | None = None) -> list[Explanation]:
        return self.store.explanations(self.run_id, explainer)

    def iter_explanations(self, explainer: str, page: int = 512) -> Iterator[Explanation]:
        return self.store.iter_explanations(self.run_id, explainer, page)

    def put_score(self, score: Score, *, clears: str | None = None) -> None:
        self.store.put_score(self.run_id, score, clears=clears)

    def scored(
        self, explainer: str, scorer: str, where: Mapping[str, Any] | None = None
    ) -> LatentIds:
        return self.store.scored(self.run_id, explainer, scorer, where)

    def scores(self, scorer: str | None = None) -> list[Score]:
        return self.store.scores(self.run_id, scorer)

    def put_failure(self, latent: LatentRef, stage: str, component: str, reason: str) -> None:
        self.store.put_failure(self.run_id, latent, stage, component, reason)

    def clear_failure(self, latent: LatentRef, stage: str, component: str) -> None:
        self.store.clear_failure(self.run_id, latent, stage, component)

    def failures(self, stage: str | None = None) -> dict[tuple[LatentRef, str], str]:
        return self.store.failures(self.run_id, stage)

    def finish(self, status: str) -> None:
        self.store.finish_run(self.run_id, status)

    def get_llm_call(self, request_hash: str) -> LLMCall | None:
        return self.store.get_llm_call(request_hash)

    def put_llm_call(self, call: LLMCall, run_id: Any = None, *, cached: bool = False) -> None:
        self.store.put_llm_call(call, self.run_id if run_id is None else run_id, cached=cached)

    def put_llm_calls(self, calls: Iterable[tuple[LLMCall, Any, bool]]) -> None:
        self.store.put_llm_calls(
            (call, self.run_id if run_id is None else run_id, cached)
            for call, run_id, cached in calls
        )

    # LLM batches

    def put_llm_batch(
        self,
        batch: LLMBatch,
        requests: Mapping[str, Mapping[str, Any]],
        payers: Mapping[str, tuple[str, str]] | None = None,
    ) -> None:
        run_id = self.run_id if batch.run_id is None else batch.run_id
        self.store.put_llm_batch(LLMBatch(**{**vars(batch), "run_id": run_id}), requests, payers)

    def update_llm_batch(
        self,
        batch_id: str,
        status: str,
        *,
        output_file_id: str | None = None,
        error_file_id: str | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> None:
        self.store.update_llm_batch(
            batch_id, status, output_file_id=output_file_id, error_file_id=error_file_id, meta=meta
        )

    def end_llm_batch(self, batch_id: str, status: str, outcomes: Mapping[str, str]) -> None:
        self.store.end_llm_batch(batch_id, status, outcomes)

    def llm_batches(
        self, client: str | None = None, endpoint: str | None = None, *, live: bool | None = None
    ) -> list[LLMBatch]:
        return self.store.llm_batches(client, endpoint, live=live)

    def llm_batch_requests(self, batch_id: str) -> dict[str, dict[str, Any] | None]:
        return self.store.llm_batch_requests(batch_id)

    def llm_batch_payers(self, batch_id: str) -> dict[str, tuple[str, str]]:
        return self.store.llm_batch_payers(batch_id)

    def llm_batch_outcomes(self, batch_id: str) -> dict[str, str | None]:
        return self.store.llm_batch_outcomes(batch_id)

    def live_llm_batch_of(self, request_hash: str, client: str, endpoint: str) -> str | None:
        return self.store.live_llm_batch_of(request_hash, client, endpoint)

    def llm_batch_attempts(self, request_hash: str) -> int:
        return self.store.llm_batch_attempts(request_hash)
