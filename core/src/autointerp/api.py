"""The Python API, for notebooks and scripts: run a pipeline, read a run as pandas DataFrames.

::

    import autointerp

    run = autointerp.run("my.toml", **{"latents.n": 20})   # plan and run, as `autointerp run`
    run = autointerp.open_run("runs/my-run")                # or read a finished run
    scores = run.scores("detection")                        # one row per latent, explainer, scorer
    table = scores.merge(run.explanations(), on=["source", "latent", "explainer"])
    table.nlargest(5, "value")[["latent", "explanation", "value"]]  # the best-explained latents

:func:`run` plans and runs exactly as the ``autointerp run`` command does: the same plugin
manager, config loading, overrides and validation (every problem at once, one line each), the
same lifecycle (run-directory lock, resume, run-finished hooks such as the HTML report). Errors
are :class:`~autointerp.errors.AutointerpError` subclasses with one-line messages.

A :class:`Run` only reads its store, opening it read-only for each call, so it can be read while
another process is still running it, and a run made by an older autointerp is never migrated by
reading it. Its tables are pandas DataFrames with pyarrow-backed columns
(:class:`pandas.ArrowDtype`); pandas and pyarrow are imported by those methods alone (``pip
install pandas pyarrow``, or the ``autointerp[dataframes]`` extra).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autointerp.errors import AutointerpError, ConfigError

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from autointerp.config import RunConfig
    from autointerp.store import Store
    from autointerp.types import LatentRef

__all__ = ["DataFramesUnavailableError", "Run", "open_run", "run"]

#: the stages of a whole run (``autointerp run``); ``("cache", "explain")`` explains only
STAGES = ("cache", "explain", "score")

#: latents whose examples are read (and turned into Arrow arrays) at a time by ``Run.examples``
EXAMPLE_CHUNK = 256


class DataFramesUnavailableError(AutointerpError):
    """pandas or pyarrow is not installed."""


# -- running ---------------------------------------------------------------------------------------


def run(
    config: str | Path | Mapping[str, Any] | RunConfig | None = None,
    *,
    run_dir: str | Path | None = None,
    stages: Sequence[str] = STAGES,
    progress: bool = True,
    report: bool = True,
    wait: bool = False,
    check: bool = True,
    **overrides: Any,
) -> Run:
    """Plan and run a pipeline as ``autointerp run`` does, and return the :class:`Run`.

    ``config``: a TOML file, a run directory (its recorded ``config.toml``: resumes it), a dict
    in the file's shape (laid over the defaults like a file), a :class:`RunConfig`, or None for
    the quickstart defaults. ``overrides`` are ``--set`` overrides with Python values; a dotted
    key goes through ``**{"latents.n": 20}``, or write the dots as double underscores
    (``latents__n=20``). ``run_dir`` is ``--run-dir``; ``stages`` a subset of cache, explain,
    score (``("cache", "explain")`` is ``autointerp explain``; ``("score",)`` scores what the
    store holds). ``report=False`` is ``--no-report``; ``wait`` waits for another process
    holding the run directory instead of raising :class:`~autointerp.runlock.RunDirInUseError`.

    Rerunning resumes: finished work is skipped and nothing is paid twice. When a stage's share
    of failed latents exceeds ``max_failure_rate``, raises
    :class:`~autointerp.pipeline.FailureRateError` (its ``run`` attribute is the handle), or
    with ``check=False`` returns the run with status "failed". Ctrl-C marks the run interrupted
    and propagates; rerun to resume.
    """
    from autointerp.pipeline import STAGES as KNOWN
    from autointerp.pipeline import run as run_pipeline
    from autointerp.plugins import get_plugin_manager
    from autointerp.runlock import hold_run_dir

    unknown = [s for s in stages if s not in KNOWN]
    if unknown or not stages:
        raise ConfigError(f"stages {list(stages)}: expected some of {', '.join(KNOWN)}")
    assignments = [_assignment(key, value) for key, value in overrides.items()]
    file: Path | None = None
    recorded = False  # a run directory's config.toml, which another process may rewrite
    if isinstance(config, str | Path):
        file = Path(config)
        if file.is_dir():  # a run directory: its recorded config, in that directory
            recorded = True
            run_dir = run_dir if run_dir is not None else file
            file = file / "config.toml"
            if not file.is_file():
                raise ConfigError(f"{config}: no config.toml here; is this a run directory?")
    if run_dir is not None:
        assignments.append(_assignment("run_dir", Path(run_dir).as_posix()))
    plugins = get_plugin_manager()
    planned, plan = _load_and_plan(config, file, assignments, plugins)  # before the dir is touched
    with hold_run_dir(plan.run_dir, wait=wait, on_wait=_say):
        if recorded:  # the recorded config may have changed while this one waited
            again, again_plan = _load_and_plan(config, file, assignments, plugins)
            if again != planned:
                plan = again_plan
        skip = frozenset() if report else frozenset({"report"})
        outcome = run_pipeline(plan, plugins, tuple(stages), skip=skip, progress=progress)
    handle = Run(outcome.run_dir, outcome.run_id, messages=outcome.messages)
    if outcome.error is not None and check:
        outcome.error.run = handle  # type: ignore[attr-defined]
        raise outcome.error
    return handle


def _say(line: str) -> None:
    import sys

    print(line, file=sys.stderr)


def _assignment(key: str, value: Any) -> str:
    """A ``--set`` assignment (``FIELD.PATH=TOML``) for a keyword override."""
    from autointerp.config import _value

    path = key.replace("__", ".")
    if not path or any(not part for part in path.split(".")):
        raise ConfigError(f"override {key!r}: expected a field path such as latents.n")
    try:
        return f"{path}={_value(value)}"
    except ConfigError as exc:
        raise ConfigError(f"override {path}: {exc}") from None


def _raw_data(
    config: str | Path | Mapping[str, Any] | RunConfig | None,
    file: Path | None,
    assignments: Sequence[str],
) -> tuple[dict[str, Any], str]:
    """The raw config data to validate and the name errors give its source."""
    import copy

    from autointerp.config import RunConfig, apply_override, default_data, load_data, merge_file

    if config is None or file is not None:
        return load_data(file, assignments), str(file) if file is not None else "defaults"
    if isinstance(config, RunConfig):
        data = config.model_dump(exclude_unset=True)  # unset fields keep their defaults' status
        for key in ("model", "feature_source", "explainer", "llm", "executor"):
            if key in data and getattr(config, key) is not None:
                data[key] = getattr(config, key).as_table()
        if "scorers" in data:
            data["scorers"] = [s.as_table() for s in config.scorers]
        source = "config"
    elif isinstance(config, Mapping):
        data = default_data()
        merge_file(data, copy.deepcopy(dict(config)))
        source = "config"
    else:
        raise ConfigError(
            f"config: expected a TOML file, a run directory, a dict or a RunConfig, got "
            f"{type(config).__name__}"
        )
    for assignment in assignments:
        apply_override(data, assignment)
    return data, source


def _load_and_plan(
    config: str | Path | Mapping[str, Any] | RunConfig | None,
    file: Path | None,
    assignments: Sequence[str],
    plugins: Any,
) -> tuple[RunConfig, Any]:
    """Validate and plan as the command does: every problem at once, one line each (the
    config's own fields and, even when those are wrong, each well-formed selection)."""
    from typing import get_args

    from autointerp.config import RunConfig, check_config, raw_selections
    from autointerp.pipeline import plan_run

    data, source = _raw_data(config, file, assignments)
    checked, problems = check_config(data, source)
    if checked is None:
        modes = get_args(RunConfig.model_fields["mode"].annotation)
        mode = data.get("mode") if data.get("mode") in modes else "parity"
        problems += plugins.selection_problems(raw_selections(data), source, mode)
    if not problems and checked is not None:
        return checked, plan_run(checked, plugins, source=source)
    raise ConfigError("\n".join(problems))


# -- reading ---------------------------------------------------------------------------------------


def open_run(path: str | Path, run_id: int | None = None) -> Run:
    """The run stored in the run directory ``path``: ``run_id``, else the latest run that did
    work (as ``autointerp status`` picks it). Raises
    :class:`~autointerp.store.RunNotFoundError` for a directory without a store or run."""
    from autointerp.store import open_run as open_store

    with open_store(path, run_id) as (_, picked):
        return Run(Path(path), picked)


class Run:
    """One run of a run directory's store, read as DataFrames. Each method opens the store for
    its own read, so the tables are current even while the run goes on elsewhere."""

    def __init__(self, dir: str | Path, id: int, *, messages: Sequence[str] = ()) -> None:
        self.dir = Path(dir)
        self.id = id
        #: what the run-finished hooks said when :func:`run` made this run (the report's path)
        self.messages = list(messages)

    def __repr__(self) -> str:
        return f"Run({str(self.dir)!r}, id={self.id}, status={self.status!r})"

    @contextlib.contextmanager
    def _store(self) -> Iterator[Store]:
        from autointerp.store import open_run as open_store

        with open_store(self.dir, self.id) as (store, _):
            yield store

    def _record(self) -> Any:
        with self._store() as store:
            return store.get_run(self.id)

    @property
    def status(self) -> str:
        """The run's status as the store says now: running, finished, failed or interrupted."""
        return str(self._record().status)

    @property
    def name(self) -> str:
        return str(self._record().name)

    @property
    def config(self) -> dict[str, Any]:
        """The run's config as recorded (the TOML file's shape)."""
        return dict(self._record().config)

    def report(self) -> Path | None:
        """The HTML report's ``index.html``, if one was written (``autointerp report``)."""
        index = self.dir / "report" / "index.html"
        return index if index.is_file() else None

    # tables

    def latents(self) -> pd.DataFrame:
        """One row per latent of the run: source, latent, frequency, max_activation, and any
        further statistic the cache stage recorded, one column each."""
        pa, _ = _modules()
        with self._store() as store:
            stats = store.latents(self.id)
        rows = [
            {"source": s.latent.source, "latent": s.latent.index, "frequency": s.frequency,
             "max_activation": s.max_activation, **_flat(s.extra, _LATENT_COLUMNS, "extra.")}
            for s in stats
        ]  # fmt: skip
        return _frame(rows, _schema(pa, _LATENT_COLUMNS))

    def explanations(self, explainer: str | None = None) -> pd.DataFrame:
        """One row per latent and explainer: source, latent, explainer, explanation, the simple
        fields of the explainer's meta (``reasks`` ...) and the provenance as JSON text."""
        pa, _ = _modules()
        with self._store() as store:
            found = store.explanations(self.id, explainer)
        rows = [
            {"source": e.latent.source, "latent": e.latent.index, "explainer": e.explainer,
             "explanation": e.text, "provenance": _json(e.provenance),
             **_flat(e.meta, _EXPLANATION_COLUMNS, "meta.")}
            for e in found
        ]  # fmt: skip
        return _frame(rows, _schema(pa, _EXPLANATION_COLUMNS))

    def scores(self, scorer: str | None = None) -> pd.DataFrame:
        """One row per latent, explainer and scorer: source, latent, explainer, scorer, value
        (null where the scorer could not score), n_failures, then the scorer's metrics one
        column each (lists and tables as JSON text; a metric named like a column above gets a
        ``metrics.`` prefix) and the provenance as JSON text. Per-example predictions are in
        the store (``autointerp export``)."""
        pa, _ = _modules()
        with self._store() as store:
            found = store.scores(self.id, scorer)
        rows = [
            {"source": s.latent.source, "latent": s.latent.index, "explainer": s.explainer,
             "scorer": s.scorer, "value": s.value, "n_failures": s.n_failures,
             "provenance": _json(s.provenance), **_flat(s.metrics, _SCORE_COLUMNS, "metrics.")}
            for s in found
        ]  # fmt: skip
        return _frame(rows, _schema(pa, _SCORE_COLUMNS))

    def examples(
        self,
        latents: Iterable[int | LatentRef] | int | None = None,
        kind: str | None = None,
    ) -> pd.DataFrame:
        """One row per stored example: source, latent, rank (its place among the latent's
        examples), kind ("top", "quantile:N", "train-quantile:N", "random", "similar" ...), role
        ("train": shown to the explainer, "test": held out for scoring, "negative"), quantile (the
        activation quantile it was drawn from, 0 = weakest; missing where it was not drawn by
        quantile), text, str_tokens, tokens (ids), activations and max_activation.

        ``latents``: indices (of any source) or ``LatentRef`` s, e.g. a column of another table;
        default all. ``kind``: a kind, a kind's prefix ("quantile") or a role. Examples are read
        a chunk of latents at a time and turned into Arrow arrays as they come."""
        pa, pd = _modules()
        with self._store() as store:
            refs = self._refs(store, latents)
            batches = []
            for start in range(0, len(refs), EXAMPLE_CHUNK):
                chunk = refs[start : start + EXAMPLE_CHUNK]
                found = store.latent_examples(self.id, chunk)
                rows = [
                    {"source": ref.source, "latent": ref.index, "rank": rank, "kind": x.kind,
                     "role": x.role, "quantile": x.quantile, "text": x.text,
                     "str_tokens": list(x.str_tokens),
                     "tokens": list(x.tokens), "activations": list(x.activations),
                     "max_activation": x.max_activation}
                    for ref in chunk
                    for rank, x in enumerate(found.get(ref, ()))
                    if kind is None or _kind_matches(x, kind)
                ]  # fmt: skip
                del found
                batches.append(pa.RecordBatch.from_pylist(rows, schema=_example_schema(pa)))
        table = pa.Table.from_batches(batches, schema=_example_schema(pa))
        return table.to_pandas(types_mapper=pd.ArrowDtype)

    def _refs(self, store: Store, latents: Iterable[int | LatentRef] | int | None) -> list[Any]:
        from autointerp.types import LatentRef

        known = [s.latent for s in store.latents(self.id)]
        if latents is None:
            return known
        if isinstance(latents, LatentRef) or not isinstance(latents, Iterable):
            latents = [latents]  # one latent (a numpy integer too)
        wanted = list(latents)
        refs = {r for r in wanted if isinstance(r, LatentRef)}
        indices = {int(r) for r in wanted if not isinstance(r, LatentRef)}
        return [r for r in known if r in refs or r.index in indices]

    def failures(self) -> pd.DataFrame:
        """One row per latent a stage gave up on: source, latent, stage ("explain", "score"),
        component (the explainer, or ``scorer/explainer``) and reason."""
        pa, _ = _modules()
        rows = []
        with self._store() as store:
            for stage in ("explain", "score"):
                for (ref, component), reason in store.failures(self.id, stage).items():
                    rows.append(
                        {"source": ref.source, "latent": ref.index, "stage": stage,
                         "component": component, "reason": reason}
                    )  # fmt: skip
        return _frame(rows, _schema(pa, _FAILURE_COLUMNS))

    def ledger(self) -> pd.DataFrame:
        """One row per LLM call the run made, paid or answered from the response cache: at
        (a UTC timestamp), client, model, cached, prompt_tokens, cached_tokens,
        completion_tokens, cost_usd, latency_s, request_hash, and the stage ("explain",
        "score") and component (the explainer, or ``scorer/explainer``) that asked ("" where
        the store does not say). Tokens, cost and latency are zero for cache hits: they were
        paid once, by the call that filled the cache. Cost per component::

            run.ledger().groupby(["stage", "component"])[["cost_usd"]].sum()"""
        pa, _ = _modules()
        with self._store() as store:
            rows = _ledger_rows(store, self.id)
        return _frame(rows, _schema(pa, _LEDGER_COLUMNS))

    def usage(self, by: Sequence[str] = ("client", "model")) -> pd.DataFrame:
        """LLM usage of the run per client and model (or per other text columns of
        :meth:`ledger`: ``by=("stage", "component")`` is the cost per component): calls
        (paid), cache_hits, the token counts, cost_usd and latency_s (of paid calls), as
        ``Store.usage`` totals them."""
        pa, _ = _modules()
        keys = tuple(by)
        wrong = [k for k in keys if _LEDGER_COLUMNS.get(k) != "string"]
        if wrong or not keys:
            names = ", ".join(k for k, kind in _LEDGER_COLUMNS.items() if kind == "string")
            raise ConfigError(f"usage(by={list(keys)}): expected some of {names}")
        with self._store() as store:
            totals: dict[tuple[str, ...], dict[str, Any]] = {}
            for row in _ledger_rows(store, self.id):
                key = tuple(row[k] for k in keys)
                total = totals.setdefault(
                    key, {**dict(zip(keys, key, strict=True)), **dict.fromkeys(_USAGE_SUMS, 0)}
                )
                total["calls"] += not row["cached"]
                total["cache_hits"] += bool(row["cached"])
                for column in _USAGE_SUMS[2:]:
                    total[column] += row[column]
        columns = {**dict.fromkeys(keys, "string"), **_USAGE_COLUMNS}
        for k in ("client", "model"):
            if k not in keys:
                del columns[k]
        return _frame(list(totals.values()), _schema(pa, columns))


def _kind_matches(example: Any, kind: str) -> bool:
    return kind in (example.kind, example.role) or example.kind.startswith(kind + ":")


def _ledger_rows(store: Store, run_id: int) -> list[dict[str, Any]]:
    out = []
    for entry in store.ledger(run_id):
        row = {name: getattr(entry, name) for name in _LEDGER_COLUMNS}
        row["at"] = int(entry.at * 1_000_000)  # microseconds since the epoch
        out.append(row)
    return out


# -- tables ----------------------------------------------------------------------------------------

_LATENT_COLUMNS = {
    "source": "string", "latent": "int64", "frequency": "float64", "max_activation": "float64",
}  # fmt: skip
_EXPLANATION_COLUMNS = {
    "source": "string", "latent": "int64", "explainer": "string", "explanation": "string",
    "provenance": "string",
}  # fmt: skip
_SCORE_COLUMNS = {
    "source": "string", "latent": "int64", "explainer": "string", "scorer": "string",
    "value": "float64", "n_failures": "int64", "provenance": "string",
}  # fmt: skip
_FAILURE_COLUMNS = {
    "source": "string", "latent": "int64", "stage": "string", "component": "string",
    "reason": "string",
}  # fmt: skip
_LEDGER_COLUMNS = {
    "at": "timestamp", "client": "string", "model": "string", "cached": "bool",
    "prompt_tokens": "int64", "cached_tokens": "int64", "completion_tokens": "int64",
    "cost_usd": "float64", "latency_s": "float64", "request_hash": "string",
    "stage": "string", "component": "string",
}  # fmt: skip
_USAGE_SUMS = ("calls", "cache_hits", "prompt_tokens", "cached_tokens", "completion_tokens",
               "cost_usd", "latency_s")  # fmt: skip
_USAGE_COLUMNS = {
    "client": "string", "model": "string", "calls": "int64", "cache_hits": "int64",
    "prompt_tokens": "int64", "cached_tokens": "int64", "completion_tokens": "int64",
    "cost_usd": "float64", "latency_s": "float64",
}  # fmt: skip


def _schema(pa: Any, columns: Mapping[str, str]) -> pa.Schema:
    types = {"string": pa.string(), "int64": pa.int64(), "float64": pa.float64(),
             "bool": pa.bool_(), "timestamp": pa.timestamp("us", tz="UTC")}  # fmt: skip
    return pa.schema([(name, types[kind]) for name, kind in columns.items()])


def _example_schema(pa: Any) -> pa.Schema:
    return pa.schema(
        [("source", pa.string()), ("latent", pa.int64()), ("rank", pa.int64()),
         ("kind", pa.string()), ("role", pa.string()), ("quantile", pa.int64()),
         ("text", pa.string()),
         ("str_tokens", pa.list_(pa.string())), ("tokens", pa.list_(pa.int64())),
         ("activations", pa.list_(pa.float32())), ("max_activation", pa.float32())]
    )  # fmt: skip


def _flat(fields: Mapping[str, Any], taken: Mapping[str, str], prefix: str) -> dict[str, Any]:
    """A record's free-form fields (metrics, meta, extra stats) as columns: scalars as they are,
    lists and tables as JSON text; a name already taken gets ``prefix``."""
    out = {}
    for key, value in fields.items():
        name = f"{prefix}{key}" if key in taken else str(key)
        out[name] = _json(value) if isinstance(value, Mapping | list | tuple) else value
    return out


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def _frame(rows: list[dict[str, Any]], schema: pa.Schema) -> pd.DataFrame:
    """A DataFrame of ``rows`` with Arrow-backed columns: the ``schema``'s columns first (typed
    even without rows), then every further key in order of appearance, typed by pyarrow (a
    column whose values pyarrow cannot type as one is JSON text)."""
    pa, pd = _modules()
    names = list(schema.names)
    extra = list(dict.fromkeys(k for row in rows for k in row if k not in schema.names))
    arrays = [pa.array([row.get(n) for row in rows], type=schema.field(n).type) for n in names]
    for name in extra:
        values = [row.get(name) for row in rows]
        try:
            arrays.append(pa.array(values))
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            arrays.append(pa.array([None if v is None else _json(v) for v in values]))
    table = pa.Table.from_arrays(arrays, names=names + extra)
    return table.to_pandas(types_mapper=pd.ArrowDtype)


def _modules() -> tuple[Any, Any]:
    """pyarrow and pandas, imported on first use; a one-line error without them."""
    try:
        import pandas as pd
        import pyarrow as pa
    except ImportError as exc:
        raise DataFramesUnavailableError(
            f"reading a run as DataFrames needs pandas and pyarrow ({exc.name} is missing): "
            "pip install pandas pyarrow"
        ) from None
    return pa, pd
