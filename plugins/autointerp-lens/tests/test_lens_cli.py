"""`autointerp lens train|eval|top` end to end on a tiny saved model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from autointerp.cli import main


@pytest.mark.parametrize("arch", ["gpt2", "mamba"])
def test_lens_train_eval_top(arch, autointerp_tiny_dirs, tmp_path: Path, capsys) -> None:
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n\n".join(f"Paragraph {i}: the cat sat on mat {i}." for i in range(60)))
    adapter = {"gpt2": "transformers", "mamba": "mamba"}[arch]
    model = ["-a", adapter, "-m", str(autointerp_tiny_dirs[arch])]
    out = tmp_path / "lens"
    args = [
        "lens",
        "train",
        str(corpus),
        "--out",
        str(out),
        "--tokens",
        "256",
        "--seq-len",
        "16",
        "--batch-size",
        "4",
        "--checkpoint-every",
        "2",
        "--no-progress",
        *model,
    ]
    assert main(args) == 0
    assert (out / "tuned_lens.safetensors").is_file() and (out / "checkpoint").is_dir()
    config = json.loads((out / "config.json").read_text())
    assert config["steps"] == 4 and config["tokens_trained"] == 256
    assert main([*args, "--tokens", "512", "--resume"]) == 0
    assert json.loads((out / "config.json").read_text())["steps"] == 8
    ev = tmp_path / "eval"
    assert (
        main(
            [
                "lens",
                "eval",
                str(corpus),
                "--lens",
                str(out),
                "--tokens",
                "128",
                "--skip-tokens",
                "64",
                "--seq-len",
                "16",
                "--batch-size",
                "4",
                "--out",
                str(ev),
                *model,
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "kl tuned" in printed and "bits/byte" in printed
    assert (ev / "lens-eval.svg").read_text().startswith("<svg")
    rows = json.loads((ev / "lens-eval.json").read_text())["rows"]
    assert rows[0]["site"] == "resid_pre.0" and len(rows) == 3
    assert main(["lens", "top", "The cat", "--k", "2", *model]) == 0
    assert "resid_post.1" in capsys.readouterr().out


def test_lens_errors_are_one_line(autointerp_tiny_dirs, tmp_path: Path, capsys) -> None:
    model = ["-a", "transformers", "-m", str(autointerp_tiny_dirs["gpt2"])]
    assert main(["lens", "eval", str(tmp_path / "none.txt"), *model]) == 1
    assert "corpus not found" in capsys.readouterr().err
    (tmp_path / "c.txt").write_text("hi")
    assert main(["lens", "eval", str(tmp_path / "c.txt"), "--lens", str(tmp_path), *model]) == 1
    assert "no tuned lens" in capsys.readouterr().err


def _eval(corpus: str, model: list[str], *extra: str) -> int:
    args = ["lens", "eval", corpus, "--tokens", "64", "--seq-len", "16", "--batch-size", "2"]
    return main([*args, *extra, *model])


def test_lens_reads_every_corpus_form_run_accepts(
    autointerp_tiny_dirs, tmp_path: Path, capsys
) -> None:
    """The built-in corpus, Parquet and hf: datasets, through core's corpus reader as in `run`
    (`lens train` on the built-in corpus: test_packaged_script.py)."""
    model = ["-a", "transformers", "-m", str(autointerp_tiny_dirs["gpt2"])]
    out = tmp_path / "builtin"
    assert _eval("builtin:python-docs", model, "--out", str(out)) == 0, capsys.readouterr().err
    assert (
        json.loads((out / "lens-eval.json").read_text())["tokens"] == 2 * 2 * 15
    )  # two batches, 15 predictions per window
    pq = pytest.importorskip("pyarrow.parquet")
    import pyarrow as pa

    texts = [f"Row {i}: the quick brown fox jumps over the lazy dog." for i in range(20)]
    pq.write_table(pa.table({"body": texts}), tmp_path / "c.parquet")
    assert _eval(str(tmp_path / "c.parquet"), model, "--text-field", "body") == 0
    assert _eval(str(tmp_path / "c.parquet"), model) == 1
    assert "no 'text' column" in capsys.readouterr().err
    pytest.importorskip("datasets")
    folder = tmp_path / "hub-set"
    folder.mkdir()
    (folder / "train.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    assert _eval(f"hf:{folder}", model) == 0, capsys.readouterr().err


def test_unreachable_hub_corpus_is_one_line(autointerp_tiny_dirs, capsys, monkeypatch) -> None:
    pytest.importorskip("datasets")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = ["-a", "transformers", "-m", str(autointerp_tiny_dirs["gpt2"])]
    assert _eval("hf:someone/no-such-corpus", model) == 1
    last = capsys.readouterr().err.strip().splitlines()[-1]  # after the model's loading bar
    assert last.startswith("error: corpus hf:someone/no-such-corpus: cannot read the dataset")
    assert _eval("builtin:nope", model) == 1
    assert "unknown corpus 'builtin:nope'" in capsys.readouterr().err
