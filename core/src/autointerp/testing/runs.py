"""Whole-pipeline test runs: a small offline run config and scripted LLM answers that parse.

``write_run_config(path, base_url=server.openai_base_url, model=...)`` writes a TOML run config
for a tiny (or packaged) model's MLP neurons on the built-in corpus, explained and scored through
the OpenAI-compatible client against :mod:`autointerp.testing.llm_server`; ``scripted_answers()``
is a responder for that server whose explanations and scorer answers parse.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any


def scripted_answers(
    explanation: str = "code words", answer: str = "1", suffix: str = ""
) -> Callable[[Any], str]:
    """A responder: ``Explanation: <explanation>`` plus, for a prompt listing N ``Example`` lines,
    ``Answer: [<answer>, ...]`` with N entries; ``suffix`` is appended (e.g. ``"\\nAnswer: A"``)."""

    def respond(request: Any) -> str:
        turn = request.body["messages"][-1]["content"]
        n = sum(1 for line in turn.splitlines() if line.startswith("Example "))
        return f"Explanation: {explanation}\nAnswer: [" + ", ".join([answer] * n) + "]" + suffix

    return respond


def write_run_config(
    path: Path,
    *,
    base_url: str,
    model: str | Path,
    name: str = "e2e",
    run_dir: Path | None = None,
    layer: int = 1,
    top_k: int = 8,
    n_latents: int = 4,
    concurrency: int = 4,
    scorers: Sequence[str] | str = ("detection",),
    source: str | None = None,
    top: str = "",
) -> Path:
    """Write a run config to ``path`` and return it; the run directory defaults to ``run`` beside
    it. ``scorers`` is a list of names or a TOML text of ``[[scorers]]`` tables; ``source`` the
    body of ``[feature_source]`` (default: the neurons of ``layer``, top ``top_k``); ``top`` extra
    top-level TOML lines."""
    run_dir = run_dir if run_dir is not None else path.parent / "run"
    if source is None:
        source = f'name = "neurons"\nlayer = {layer}\ntop_k = {top_k}'
    if not isinstance(scorers, str):
        scorers = "\n\n".join(f'[[scorers]]\nname = "{s}"' for s in scorers)
    model_spec = model.as_posix() if isinstance(model, Path) else model
    path.write_text(
        f"""
name = "{name}"
run_dir = "{run_dir.as_posix()}"
concurrency = {concurrency}
{top}

[model]
name = "transformers"
model = "{model_spec}"

[feature_source]
{source}

[explainer]
name = "default"

[llm]
name = "openai-compatible"
base_url = "{base_url}"
backoff_base_s = 0.01

{scorers}

[corpus]
ctx_len = 32
batch_size = 4
n_tokens = 1024

[latents]
n = {n_latents}
min_activations = 3
window = 16
n_train = 5
n_test = 4
n_negatives = 4
""",
        encoding="utf-8",
    )
    return path


def small_finished_store(run_dir: Path) -> Path:
    """A results store in ``run_dir`` holding one run: latent 1 explained and scored, latent 2
    failed (for tests of commands that read runs: status, export, report). Returns ``run_dir``."""
    from autointerp.store import Store
    from autointerp.types import Explanation, LatentRef, Prediction, Score

    with Store.open(run_dir) as store:
        run = store.start_run("r", {})
        a, b = LatentRef("sae/resid_post.3", 1), LatentRef("sae/resid_post.3", 2)
        store.put_explanation(
            run,
            Explanation(a, "days of the week", "default", {"reasks": 0}, {"config_hash": "abc"}),
        )
        store.put_score(
            run,
            Score(a, "detection", "default", 0.75, {"f1": 0.8}, (Prediction(0, 1.0, 1.0),), 1),
        )
        store.put_failure(run, b, "explain", "default", "unparseable after 2 re-asks")
    return run_dir
