"""`autointerp status` on a finished run: done, failed and pending latents per stage."""

from __future__ import annotations

import json

import pytest

from autointerp.store import Store
from autointerp.testing.runs import small_finished_store


@pytest.fixture
def finished_run(autointerp_run_dir):
    return small_finished_store(autointerp_run_dir)


def test_status_counts_done_failed_and_pending(finished_run, autointerp_cli) -> None:
    with Store.open(finished_run) as store:
        store.put_latents(
            1,
            "sae/resid_post.3",
            [{"index": i, "frequency": 0.1, "max_activation": 1.0} for i in range(5)],
        )
    result = autointerp_cli("status", str(finished_run), "--json")
    assert result.exit_code == 0, result.stderr
    rows = {(r["stage"], r["component"]): r for r in json.loads(result.stdout)}
    assert rows[("explain", "default")] == {
        "stage": "explain",
        "component": "default",
        "done": 1,
        "failed": 1,
        "pending": 3,
        **dict.fromkeys(("calls", "cache_hits", "prompt_tokens", "completion_tokens"), 0),
        "cost_usd": 0.0,  # no LLM call in this store
    }
    assert rows[("score", "detection/default")]["done"] == 1
    table = autointerp_cli("status", str(finished_run))
    assert table.exit_code == 0 and "detection/default" in table.stdout
