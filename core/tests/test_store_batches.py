"""The results store's record of LLM batches: what a restarted run needs to find the batches it
submitted, the requests they hold, and how often each request was submitted."""

from __future__ import annotations

import time
from pathlib import Path

from autointerp.store import LLMBatch, Store


def batch(batch_id: str, client: str = "openai-batch", endpoint: str = "e") -> LLMBatch:
    now = time.time()
    return LLMBatch(batch_id, client, endpoint, "validating", 2, now, now, input_file_id="file-1")


def test_a_live_batch_is_found_by_its_requests_until_it_ends(tmp_path: Path) -> None:
    with Store.open(tmp_path) as store:
        run = store.bind(store.start_run("r", {}))
        run.put_llm_batch(batch("b1"), {"h1": {"messages": ["one"]}, "h2": {"messages": ["two"]}})
        (live,) = run.llm_batches("openai-batch", "e", live=True)
        assert live.run_id == run.run_id and live.input_file_id == "file-1"
        assert run.live_llm_batch_of("h1", "openai-batch", "e") == "b1"
        assert run.live_llm_batch_of("h1", "anthropic-batch", "e") is None  # another client's
        assert run.llm_batch_requests("b1") == {
            "h1": {"messages": ["one"]},
            "h2": {"messages": ["two"]},
        }

        run.update_llm_batch("b1", "completed", output_file_id="file-2", meta={"n": 2})
        (live,) = run.llm_batches(live=True)
        assert (live.status, live.output_file_id, live.meta) == ("completed", "file-2", {"n": 2})

        run.end_llm_batch("b1", "completed", {"h1": "answered", "h2": "batch_expired"})
        assert run.llm_batches(live=True) == []
        assert run.live_llm_batch_of("h1", "openai-batch", "e") is None
        assert run.llm_batch_outcomes("b1") == {"h1": "answered", "h2": "batch_expired"}
        assert run.llm_batch_requests("b1") == {"h1": None, "h2": None}  # payloads dropped

        run.put_llm_batch(batch("b2"), {"h2": {"messages": ["two"]}})
        assert run.llm_batch_attempts("h2") == 2 and run.llm_batch_attempts("h1") == 1
    with Store.open(tmp_path) as store:  # a new process sees the same
        assert [b.id for b in store.llm_batches(live=True)] == ["b2"]
        assert [b.id for b in store.llm_batches(live=False)] == ["b1"]
