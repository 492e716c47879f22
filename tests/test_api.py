"""The Python API (``autointerp.run`` / ``autointerp.open_run``): a run made from Python is the
command's run, and every table of a ``Run`` holds what the store holds, in Arrow-backed columns.
docs/python-api.md runs as written."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import autointerp
from autointerp.api import DataFramesUnavailableError, Run
from autointerp.config import load_config
from autointerp.errors import ConfigError
from autointerp.pipeline import FailureRateError
from autointerp.store import RunNotFoundError, Store
from autointerp.testing.adapters import save_tiny, tiny_model
from autointerp.testing.llm_server import ScriptedLLMServer, reject
from autointerp.testing.runs import scripted_answers, write_run_config

pd = pytest.importorskip("pandas")
pytest.importorskip("pyarrow")

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def server() -> Iterator[ScriptedLLMServer]:
    server = ScriptedLLMServer().start()
    server.responder = scripted_answers()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny(tiny_model("gpt2"), tmp_path_factory.mktemp("model") / "gpt2")


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory, server: ScriptedLLMServer, model: Path) -> Run:
    """One run of the tiny setup made through ``autointerp.run``, shared by the reading tests."""
    tmp = tmp_path_factory.mktemp("api")
    path = write_run_config(tmp / "run.toml", base_url=server.openai_base_url, model=model)
    return autointerp.run(path, progress=False)


def dtypes(frame: Any) -> dict[str, str]:
    return {name: str(dtype) for name, dtype in frame.dtypes.items()}


def test_import_autointerp_imports_neither_pandas_nor_torch() -> None:
    code = (
        "import sys, autointerp\n"
        "assert callable(autointerp.run) and callable(autointerp.open_run)\n"
        "print(sorted(m for m in ('pandas', 'pyarrow', 'torch') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "[]"


def test_a_run_made_from_python_is_the_commands_run(made: Run) -> None:
    assert made.status == "finished" and made.name == "e2e"
    assert made.report() == made.dir / "report" / "index.html"
    assert any("report:" in line for line in made.messages)  # the run-finished hooks ran
    assert not (made.dir / ".lock").exists()  # the run directory's lock was held and released
    assert made.config["latents"]["n"] == 4
    assert "Run(" in repr(made) and "finished" in repr(made)
    with Store.open(made.dir) as store:
        (record,) = store.runs()
        assert record.id == made.id and record.status == "finished"


def test_latents_explanations_and_scores_hold_the_stores_rows(made: Run) -> None:
    with Store.open(made.dir) as store:
        stats = store.latents(made.id)
        explanations = store.explanations(made.id)
        scores = store.scores(made.id)
    latents = made.latents()
    assert len(latents) == len(stats) == 4
    assert list(latents.latent) == [s.latent.index for s in stats]
    assert list(latents.frequency) == pytest.approx([s.frequency for s in stats])
    assert dtypes(latents)["source"] == "string[pyarrow]"
    assert dtypes(latents)["latent"] == "int64[pyarrow]"

    frame = made.explanations()
    assert len(frame) == len(explanations) == 4
    assert list(frame.columns[:5]) == ["source", "latent", "explainer", "explanation", "provenance"]
    assert set(frame.explanation) == {"code words"}
    assert list(frame.reasks) == [e.meta["reasks"] for e in explanations]
    assert json.loads(frame.provenance[0]) == explanations[0].provenance

    table = made.scores()
    assert len(table) == len(scores) == 4 and set(table.scorer) == {"detection"}
    assert list(table.value) == pytest.approx([s.value for s in scores])
    assert list(table.n_failures) == [s.n_failures for s in scores]
    for metric in ("accuracy", "f1", "precision", "recall"):  # metrics, flattened
        assert list(table[metric]) == pytest.approx([s.metrics[metric] for s in scores])
    assert "metrics.n_failures" in table.columns  # a metric named like a column keeps its own
    assert dtypes(table)["value"] == "double[pyarrow]"
    assert len(made.scores("detection")) == 4 and len(made.scores("fuzzing")) == 0
    assert list(made.scores("fuzzing").columns[:4]) == ["source", "latent", "explainer", "scorer"]


def test_examples_are_one_row_per_stored_example(made: Run) -> None:
    with Store.open(made.dir) as store:
        refs = [s.latent for s in store.latents(made.id)]
        stored = {ref: store.examples(made.id, ref) for ref in refs}
    frame = made.examples()
    assert len(frame) == sum(len(v) for v in stored.values())
    first = stored[refs[0]]
    rows = frame[frame.latent == refs[0].index]
    assert list(rows["rank"]) == list(range(len(first)))
    assert list(rows.kind) == [x.kind for x in first]
    assert list(rows.text) == [x.text for x in first]
    quantiles = [None if q is pd.NA else int(q) for q in rows["quantile"]]
    assert quantiles == [x.quantile for x in first] and any(q is not None for q in quantiles)
    assert list(rows.tokens.iloc[0]) == list(first[0].tokens)
    assert list(rows.str_tokens.iloc[0]) == list(first[0].str_tokens)
    assert list(rows.activations.iloc[0]) == pytest.approx(first[0].activations, abs=1e-3)
    assert rows.max_activation.iloc[0] == pytest.approx(first[0].max_activation, abs=1e-3)
    assert str(frame.dtypes["tokens"]).startswith("list<item: int64>")

    one = made.examples(latents=refs[1].index)
    assert len(one) == len(stored[refs[1]]) and set(one.latent) == {refs[1].index}
    assert len(made.examples(latents=[refs[1]])) == len(one)  # a LatentRef works too
    assert len(made.examples(latents=made.latents().latent)) == len(frame)  # so does a column
    train = made.examples(kind="train")
    assert set(train.kind) == {"top"} and len(train) == sum(
        x.role == "train" for v in stored.values() for x in v
    )
    assert set(made.examples(kind="quantile").role) == {"test"}
    assert len(made.examples(latents=[10_000])) == 0


def test_examples_are_read_a_chunk_of_latents_at_a_time(
    made: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    import autointerp.api as api

    asked: list[int] = []
    original = Store.latent_examples

    def spy(self: Store, run_id: int, latents: Any, **kw: Any) -> Any:
        asked.append(len(latents))
        return original(self, run_id, latents, **kw)

    monkeypatch.setattr(api, "EXAMPLE_CHUNK", 3)
    monkeypatch.setattr(Store, "latent_examples", spy)
    frame = made.examples()
    assert asked == [3, 1]
    assert len(frame) == len(made.examples(latents=[0, 1, 2, 3, 4, 5, 6, 7, 8]))


def test_failures_ledger_and_usage(made: Run) -> None:
    with Store.open(made.dir) as store:
        usage = store.usage(made.id)
        failures = store.failures(made.id)
    frame = made.failures()
    assert len(frame) == len(failures)
    assert list(frame.columns) == ["source", "latent", "stage", "component", "reason"]

    ledger = made.ledger()
    assert len(ledger) == usage.calls + usage.cache_hits >= 8
    assert set(ledger.client) == {"openai-compatible"}
    assert int(ledger.prompt_tokens.sum()) == usage.prompt_tokens
    assert str(ledger.dtypes["at"]).startswith("timestamp[us, tz=UTC]")
    assert not ledger.cached.any()

    table = made.usage()
    assert len(table) == 1
    row = table.iloc[0]
    assert row.calls == usage.calls and row.cache_hits == usage.cache_hits
    assert row.completion_tokens == usage.completion_tokens
    assert row.cost_usd == pytest.approx(usage.cost_usd)


def test_open_run_reads_the_run_later_and_a_rerun_resumes_it(
    made: Run, server: ScriptedLLMServer
) -> None:
    later = autointerp.open_run(made.dir)
    assert (later.id, later.status) == (made.id, "finished")
    assert later.scores().equals(made.scores())
    assert autointerp.open_run(made.dir, run_id=made.id).id == made.id

    requests, calls = len(server.requests), len(made.ledger())
    again = autointerp.run(made.dir, progress=False, report=False)  # its recorded config.toml
    assert again.id == made.id and again.status == "finished"
    assert len(server.requests) == requests  # resumed: nothing asked twice
    assert len(again.ledger()) == calls  # finished work was skipped, not even looked up


def test_open_run_errors_name_the_directory(made: Run, tmp_path: Path) -> None:
    with pytest.raises(RunNotFoundError, match=r"missing: does not exist; is this a run dir"):
        autointerp.open_run(tmp_path / "missing")
    with pytest.raises(RunNotFoundError, match=rf"no run 99; runs here: {made.id}"):
        autointerp.open_run(made.dir, run_id=99)


def test_overrides_are_the_commands_set(
    tmp_path: Path, server: ScriptedLLMServer, model: Path
) -> None:
    path = write_run_config(tmp_path / "run.toml", base_url=server.openai_base_url, model=model)
    made = autointerp.run(
        path, run_dir=tmp_path / "other", latents__n=2, report=False, progress=False,
        **{"explainer.temperature": 0.5},
    )  # fmt: skip
    assert made.dir == tmp_path / "other"
    assert made.config["latents"]["n"] == 2 and made.config["explainer"]["temperature"] == 0.5
    assert len(made.latents()) == 2 and len(made.explanations()) == 2
    assert made.report() is None and made.messages == []
    assert load_config(made.dir / "config.toml").latents.n == 2


def test_a_dict_or_a_run_config_is_a_config(
    tmp_path: Path, server: ScriptedLLMServer, model: Path
) -> None:
    path = write_run_config(tmp_path / "run.toml", base_url=server.openai_base_url, model=model)
    config = load_config(path)
    table = config.as_table()
    # stages=("cache",) makes no LLM call: the config's routes are what is checked here
    from_dict = autointerp.run(
        table, stages=("cache",), run_dir=tmp_path / "a", report=False, progress=False
    )
    assert from_dict.config["latents"] == table["latents"] and len(from_dict.latents()) == 4
    from_config = autointerp.run(
        config, stages=("cache",), latents__n=3, run_dir=tmp_path / "b", report=False,
        progress=False,
    )  # fmt: skip
    assert from_config.config["latents"]["n"] == 3 and len(from_config.latents()) == 3


def test_config_problems_are_one_line_errors_before_anything_is_written(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"latents\.n_trian: unknown field; did you mean"):
        autointerp.run(run_dir=tmp_path / "r", latents__n_trian=3)
    with pytest.raises(ConfigError, match="no such config file"):
        autointerp.run(tmp_path / "absent.toml")
    with pytest.raises(ConfigError, match="expected some of cache, explain, score"):
        autointerp.run(stages=("cache", "explian"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match=r"empty: no config\.toml here; is this a run directory"):
        autointerp.run(tmp_path / "empty")
    with pytest.raises(ConfigError, match="TOML has no null"):
        autointerp.run(**{"explainer.temperature": None})
    assert not (tmp_path / "r").exists()


def test_without_pandas_the_tables_say_what_to_install(
    made: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pandas", None)  # import pandas raises ImportError
    with pytest.raises(DataFramesUnavailableError, match=r"pip install pandas pyarrow$"):
        made.scores()
    assert made.status == "finished"  # what needs no DataFrame still works


def test_the_python_api_doc_runs_as_written(
    tmp_path: Path, server: ScriptedLLMServer, model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = (ROOT / "docs" / "python-api.md").read_text(encoding="utf-8")
    blocks = re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)
    assert len(blocks) >= 6
    write_run_config(
        tmp_path / "my-run.toml", base_url=server.openai_base_url, model=model,
        name="my-run", run_dir=Path("runs/my-run"),
    )  # fmt: skip
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, Any] = {}
    for i, block in enumerate(blocks):
        try:
            exec(compile(block, f"docs/python-api.md block {i + 1}", "exec"), namespace)
        except Exception as exc:  # name the block that broke
            raise AssertionError(f"block {i + 1} of docs/python-api.md failed: {exc}") from exc
    run = namespace["run"]
    assert run.dir == Path("runs/my-run") and run.status == "finished"
    assert len(namespace["best"]) == 3 and len(namespace["examples"]) > 0


def test_too_many_failures_raise_with_the_run_or_return_it_failed(
    tmp_path: Path, autointerp_llm_server: ScriptedLLMServer, model: Path
) -> None:
    autointerp_llm_server.script(*[reject() for _ in range(100)])  # every explanation refused
    path = write_run_config(
        tmp_path / "run.toml", base_url=autointerp_llm_server.openai_base_url, model=model
    )
    with pytest.raises(FailureRateError, match=r"explain \(default\): 4 of 4 latents failed") as e:
        autointerp.run(path, report=False, progress=False)
    failed = e.value.run  # type: ignore[attr-defined]
    assert failed.status == "failed" and len(failed.failures()) == 4
    assert set(failed.failures().stage) == {"explain"}

    again = autointerp.run(path, check=False, report=False, progress=False)
    assert again.id == failed.id and again.status == "failed"
