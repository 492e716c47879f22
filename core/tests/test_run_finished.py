"""The ``autointerp_run_finished`` hook: called once when a run ends (finished, or failed for too
many failed latents), its lines printed after the summary; a raising implementation is one line,
never a failed run. Core names no plugin here: a third-party plugin is registered in process."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from autointerp import hookimpl
from autointerp.plugins import PluginManager, run_finished
from autointerp.store import Store
from autointerp.testing.adapters import save_tiny, tiny_model
from autointerp.testing.llm_server import RecordedRequest, ScriptedLLMServer, reject, reply
from autointerp.testing.runs import scripted_answers, write_run_config


class Recorder:
    """Records each call and answers with one line."""

    def __init__(self) -> None:
        self.calls: list[tuple[Path, int, str, frozenset[str]]] = []

    @hookimpl
    def autointerp_run_finished(
        self, run_dir: Path, run_id: int, status: str, skip: frozenset[str]
    ) -> str:
        self.calls.append((run_dir, run_id, status, skip))
        return f"recorder: run {run_id} {status} in {run_dir}"


class Raiser:
    @hookimpl
    def autointerp_run_finished(self, run_dir: Path) -> str:
        raise RuntimeError(f"boom in {run_dir.name}")


class Silent:
    @hookimpl
    def autointerp_run_finished(self, status: str) -> None:  # takes only what it needs
        return None


def test_run_finished_calls_every_plugin_and_keeps_going_past_a_raising_one(
    tmp_path: Path,
) -> None:
    manager = PluginManager(entry_points=False)
    first, last = Recorder(), Recorder()
    for name, plugin in (("first", first), ("raiser", Raiser()), ("silent", Silent())):
        manager.register(plugin, name)
    manager.register(last, "last")
    lines = run_finished(manager, tmp_path, 3, "finished", ["report"])
    assert first.calls == last.calls == [(tmp_path, 3, "finished", frozenset({"report"}))]
    assert f"recorder: run 3 finished in {tmp_path}" in lines
    failed = f"a run-finished hook failed: plugin 'raiser': RuntimeError: boom in {tmp_path.name}"
    assert failed in lines
    assert len(lines) == 3  # the silent plugin's None prints nothing
    assert run_finished(PluginManager(entry_points=False), tmp_path, 1, "failed") == []


def test_a_plugin_hears_when_autointerp_run_ends_finished_or_failed(
    autointerp_plugins: PluginManager,
    autointerp_llm_server: ScriptedLLMServer,
    autointerp_cli: Any,
    tmp_path: Path,
) -> None:
    recorder = Recorder()
    autointerp_plugins.register(recorder, "recorder")
    autointerp_plugins.register(Raiser(), "raiser")
    respond = scripted_answers()
    refuse = {"on": True}

    def responder(request: RecordedRequest) -> Any:
        return reject(400, "refused") if refuse["on"] else reply(respond(request))

    autointerp_llm_server.responder = responder
    model = save_tiny(tiny_model("gpt2"), tmp_path / "model")
    base_url = autointerp_llm_server.openai_base_url
    config = str(write_run_config(tmp_path / "run.toml", base_url=base_url, model=model))
    run_dir = tmp_path / "run"

    failed = autointerp_cli("run", config, "--no-report")  # every explanation refused
    assert failed.exit_code == 1
    assert "4 of 4 latents failed" in failed.stderr.strip().splitlines()[-1]
    assert [(Path(d).resolve(), s, k) for d, _, s, k in recorder.calls] == [
        (run_dir.resolve(), "failed", frozenset({"report"}))
    ]
    ((_, run_id, _, _),) = recorder.calls
    with Store.open(run_dir) as store:
        (run,) = store.runs()
        assert run.id == run_id and run.status == "failed"
    out = failed.stdout
    line = f"recorder: run {run_id} failed in {recorder.calls[0][0]}"
    assert line in out and out.index(line) > out.index("results:")  # after the summary
    assert "a run-finished hook failed: plugin 'raiser': RuntimeError: boom in run" in out

    refuse["on"] = False  # the rerun resumes the same run and finishes it
    finished = autointerp_cli("run", config)
    assert finished.exit_code == 0, finished.stderr  # the raising hook does not fail the run
    assert len(recorder.calls) == 2
    assert recorder.calls[1][1:] == (run_id, "finished", frozenset())
    assert f"recorder: run {run_id} finished in" in finished.stdout
    assert "a run-finished hook failed: plugin 'raiser'" in finished.stdout
