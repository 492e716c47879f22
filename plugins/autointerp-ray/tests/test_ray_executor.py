"""The ray executor on a real local Ray cluster (one per module, conftest.py): a run caches on
actors and builds examples and scores as tasks, and gives what the in-process run gives, export
for export; a unit whose worker dies is run again; an address where no cluster answers is one
line, and the finished work stays for the rerun."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from autointerp_ray.executor import RayExecutor
from autointerp_ray.plugin import RayConfig

from autointerp.cache import ActivationCache
from autointerp.executors import ExecutorError
from autointerp.store import Store
from autointerp.testing.llm_server import ScriptedLLMServer
from autointerp.testing.runs import scripted_answers, write_run_config

pytestmark = pytest.mark.ray  # a real local cluster (conftest.py)


def config(
    tmp_path: Path, name: str, server: ScriptedLLMServer, model: Path, executor: str, **kw: object
) -> Path:
    path = write_run_config(
        tmp_path / f"{name}.toml", base_url=server.openai_base_url, model=model,
        run_dir=tmp_path / name, top=executor, concurrency=1, **kw,  # type: ignore[arg-type]
    )  # fmt: skip
    return path


def snapshot(run_dir: Path) -> tuple[object, ...]:
    with Store.open(run_dir) as store:
        (run,) = store.runs()
        latents = sorted(s.latent for s in store.latents(run.id))
        examples = {ref: store.examples(run.id, ref) for ref in latents}
        scores = sorted((s.latent, s.scorer, s.value, s.predictions) for s in store.scores(run.id))
    return latents, examples, scores


def test_a_ray_run_equals_the_in_process_run(
    ray_cluster: str,
    autointerp_llm_server: ScriptedLLMServer,
    autointerp_cli,
    model_dir: Path,
    tmp_path: Path,
) -> None:
    autointerp_llm_server.responder = scripted_answers()
    # one caching actor per CPU: they must let go of the CPUs for the example-building tasks
    ray_table = '[executor]\nname = "ray"\ncache_chunk_contexts = 8'
    exports = {}
    for name, top in (("inproc", ""), ("ray", ray_table)):
        path = config(
            tmp_path, name, autointerp_llm_server, model_dir, top, n_latents=18,
            scorers=("myscorer",),
        )  # fmt: skip
        result = autointerp_cli("run", str(path), "--no-report")
        assert result.exit_code == 0, result.stderr
        out = tmp_path / f"{name}-export"
        exported = autointerp_cli("export", str(tmp_path / name), "--out", str(out))
        assert exported.exit_code == 0, exported.stderr
        exports[name] = {p.name: p.read_bytes() for p in sorted(out.iterdir())}
    assert exports["ray"] == exports["inproc"]  # byte-equal explanations, scores, failures
    assert b'"scorer": "myscorer"' in exports["ray"]["scores.jsonl"]  # scored on the cluster
    assert snapshot(tmp_path / "ray") == snapshot(tmp_path / "inproc")

    (inproc_dir,) = (tmp_path / "inproc" / "cache").glob("*/manifest.json")
    inproc = ActivationCache(inproc_dir.parent)
    on_ray = ActivationCache(tmp_path / "ray" / "cache" / inproc_dir.parent.name)
    assert len(inproc.shards) == 1 and len(on_ray.shards) == 4  # 32 contexts, chunks of 8
    assert on_ray.manifest["complete"] and on_ray.manifest["n_tokens"] == 1024
    assert (on_ray.tokens() == inproc.tokens()).all()
    for index in range(0, inproc.n_latents, 7):
        (a_tok, a_val), (b_tok, b_val) = inproc.latent(index), on_ray.latent(index)
        assert (a_tok == b_tok).all() and (a_val == b_val).all()
    leftovers = [p.name for p in on_ray.dir.iterdir() if p.name.startswith(".chunk")]
    assert not leftovers


def test_a_unit_whose_worker_dies_is_run_again(ray_cluster: str, tmp_path: Path) -> None:
    marker = tmp_path / "died"

    def square_or_die(x: int) -> int:  # a closure: Ray ships it by value
        if x == 3 and not marker.exists():
            marker.touch()
            os._exit(1)  # the worker process dies mid-task, as under kill -9
        return x * x

    executor = RayExecutor(RayConfig(address="auto", ahead=3, retries=2))
    try:
        assert list(executor.map(square_or_die, range(10))) == [x * x for x in range(10)]
    finally:
        executor.close()
    assert marker.exists()


def test_a_caching_actor_killed_mid_chunk_is_restarted_and_its_chunk_listed_once(
    ray_cluster: str, tmp_path: Path
) -> None:
    import numpy as np
    import ray
    from autointerp_ray.caching import Chunk, _dispatch

    marker = tmp_path / "died"

    class Worker:  # CacheWorker's contract: write shard <index>, return its manifest entry
        def cache(self, cache_dir: str, chunk: Chunk) -> dict[str, object]:
            if chunk.index == 2 and not marker.exists():
                marker.touch()
                os._exit(1)  # the actor's process dies mid-chunk
            shard = Path(cache_dir) / f"shard-{chunk.index:05d}"
            shard.write_bytes(np.concatenate(chunk.batches).tobytes())
            return {"file": shard.name, "contexts": sum(len(b) for b in chunk.batches)}

    actor = ray.remote(Worker).options(max_restarts=2, max_task_retries=2, num_cpus=0)
    actors = [actor.remote() for _ in range(2)]
    chunks = [
        Chunk(i, 4 * i, (np.full((2, 8), i, np.int32), np.full((2, 8), i, np.int32)))
        for i in range(6)
    ]
    listed: list[dict[str, object]] = []
    executor = RayExecutor(RayConfig(address="auto"))
    _dispatch(executor, actors, iter(chunks), str(tmp_path), 4, listed.append)
    assert marker.exists()
    assert [e["file"] for e in listed] == [f"shard-{i:05d}" for i in range(6)]  # once, in order
    for i in range(6):
        assert set(np.frombuffer((tmp_path / f"shard-{i:05d}").read_bytes(), np.int32)) == {i}
    for a in actors:
        ray.kill(a)


def test_caching_stopped_midway_resumes_to_the_in_process_cache(
    ray_cluster: str, model_dir: Path, tmp_path: Path
) -> None:
    import torch

    from autointerp.cache import build_cache
    from autointerp.plugins import PluginManager

    info = {
        "adapter": "transformers", "model": {"model": str(model_dir)},
        "source": "neurons", "source_options": {"layer": 1, "top_k": 8},
    }  # fmt: skip
    plugins = PluginManager()
    adapter = plugins.build("model_adapter", info["adapter"], info["model"])
    source = plugins.build("feature_source", info["source"], info["source_options"])
    g = torch.Generator().manual_seed(0)
    data = [torch.randint(0, 100, (4, 16), generator=g) for _ in range(8)]
    build_cache(adapter, source, data, tmp_path / "inproc", info, contexts_per_shard=8)

    def stopped() -> Iterator[torch.Tensor]:  # the driver stops after five batches
        yield from data[:5]
        raise KeyboardInterrupt

    executor = RayExecutor(RayConfig(address="auto", cache_actors=1, cache_chunk_contexts=8))
    try:
        with pytest.raises(KeyboardInterrupt):
            executor.cache_chunks(adapter, source, stopped(), tmp_path / "ray", info)
        partial = json.loads((tmp_path / "ray" / "manifest.json").read_text())
        assert len(partial["shards"]) <= 2 and not partial["complete"]
        executor.cache_chunks(adapter, source, iter(data), tmp_path / "ray", info, progress=False)
    finally:
        executor.close()

    manifests = [
        json.loads((tmp_path / d / "manifest.json").read_text()) for d in ("inproc", "ray")
    ]
    assert manifests[1]["shards"] == manifests[0]["shards"]  # 4 shards, same sizes and offsets
    assert manifests[1]["complete"] and manifests[1]["n_tokens"] == manifests[0]["n_tokens"]
    for entry in manifests[0]["shards"]:
        assert (tmp_path / "ray" / entry["file"]).read_bytes() == (
            tmp_path / "inproc" / entry["file"]
        ).read_bytes()
    assert sorted(p.name for p in (tmp_path / "ray").iterdir()) == sorted(
        p.name for p in (tmp_path / "inproc").iterdir()
    )  # no scratch folders or stray shards


def test_a_worker_that_keeps_dying_is_one_line(ray_cluster: str) -> None:
    def die(x: int) -> int:
        os._exit(1)

    executor = RayExecutor(RayConfig(retries=0))
    try:
        with pytest.raises(ExecutorError, match=r"lost its worker 1 times") as caught:
            list(executor.map(die, range(2)))
    finally:
        executor.close()
    assert "\n" not in str(caught.value)


def completions(server: ScriptedLLMServer) -> int:
    return sum(1 for r in server.requests if r.path.endswith("/completions"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_an_unreachable_cluster_is_one_line_and_the_rerun_resumes(
    ray_cluster: str,
    autointerp_llm_server: ScriptedLLMServer,
    autointerp_cli,
    model_dir: Path,
    tmp_path: Path,
) -> None:
    autointerp_llm_server.responder = scripted_answers()
    explained = config(tmp_path, "run", autointerp_llm_server, model_dir, "", n_latents=4)
    assert autointerp_cli("explain", str(explained)).exit_code == 0  # in process
    calls = completions(autointerp_llm_server)

    away = f'[executor]\nname = "ray"\naddress = "127.0.0.1:{free_port()}"\nconnect_timeout_s = 2'
    path = config(
        tmp_path, "run", autointerp_llm_server, model_dir, away, n_latents=4,
        scorers=("myscorer",),
    )  # fmt: skip
    failed = autointerp_cli("run", str(path), "--no-report")
    assert failed.exit_code != 0
    (line,) = [x for x in failed.stderr.splitlines() if x.startswith("error")]  # one line
    assert "no Ray cluster answers" in line and "executor.address" in line
    with Store.open(tmp_path / "run") as store:
        (run,) = store.runs()
        assert len(store.explanations(run.id)) == 4  # kept
        assert store.scores(run.id) == []

    path.write_text(path.read_text().replace(away, '[executor]\nname = "ray"\naddress = "auto"'))
    resumed = autointerp_cli("run", str(path), "--no-report")
    assert resumed.exit_code == 0, resumed.stderr
    with Store.open(tmp_path / "run") as store:
        (run,) = store.runs()
        assert len(store.scores(run.id, "myscorer")) == 4
    assert completions(autointerp_llm_server) == calls  # no explanation paid for twice


def test_the_address_is_checked_when_the_config_is_read() -> None:
    with pytest.raises(ValueError, match="expected 'local', 'auto'"):
        RayConfig(address="my-cluster")
    assert RayConfig(address="ray://10.0.0.1:10001").address.startswith("ray://")


def test_listing_plugins_imports_no_ray(tmp_path: Path) -> None:
    import subprocess
    import sys

    code = (
        "import sys; from autointerp.plugins import PluginManager; m = PluginManager(); "
        "assert 'ray' in m.names('executor'); print(json.dumps('ray' in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", "import json; " + code], capture_output=True, text=True, check=True
    )
    assert json.loads(out.stdout) is False
