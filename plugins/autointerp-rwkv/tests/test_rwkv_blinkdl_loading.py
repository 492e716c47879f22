"""Loading RWKV-5/6/7 BlinkDL checkpoints through the ``rwkv`` adapter's config, and the adapter at
work inside the CLI (``sites``, ``steer`` with state steering)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from autointerp_rwkv.loading import from_config
from autointerp_rwkv.plugin import RwkvConfig
from autointerp_rwkv.tiny import tiny_state_dict

from autointerp.adapter import AdapterError
from autointerp.cli import main
from autointerp.testing.adapters import random_ids, tiny_tokenizer


def _checkpoint_dir(where: Path, version: str, tokenizer: bool = True) -> Path:
    where.mkdir(parents=True, exist_ok=True)
    torch.save(tiny_state_dict(version), where / f"RWKV-tiny-{version}.pth")
    if tokenizer:
        tiny_tokenizer().save_pretrained(where)
    return where


def test_sites_command_loads_a_checkpoint_directory(tmp_path: Path, autointerp_cli) -> None:
    model = _checkpoint_dir(tmp_path / "m", "rwkv7")
    result = autointerp_cli("sites", str(model), "--adapter", "rwkv", "--json")
    assert result.exit_code == 0, result.stderr
    info = json.loads(result.stdout)
    assert (info["architecture"], info["recurrent"], info["n_layers"]) == ("rwkv7", True, 2)
    sites = {s["name"]: s for s in info["sites"]}
    assert sites["wkv_state.1"]["shape"] == [4, 8, 8]  # heads, head size, head size
    assert sites["attn_out.0"]["module_path"] == "blocks.0.att"


def test_state_steering_runs_end_to_end(tmp_path: Path, capsys) -> None:
    model = ["-a", "rwkv", "-m", str(_checkpoint_dir(tmp_path / "m", "rwkv6"))]
    pairs = tmp_path / "pairs.jsonl"
    rows = [
        {"prompt": f"Q: {w} sky?\n(A) yes (B) no\nAnswer: (", "positive": "A", "negative": "B"}
        for w in ("red", "blue", "cat", "moon")
    ]
    pairs.write_text("".join(json.dumps(r) + "\n" for r in rows))
    vec = tmp_path / "v.safetensors"
    assert main(["steer", "vectors", str(pairs), "--out", str(vec), *model]) == 0
    out = tmp_path / "sweep"
    sweep = ["steer", "sweep", str(pairs), "--vectors", str(vec), "--out", str(out)]
    sweep += ["--multipliers", "-1,1", "--layers", "0", "--state", *model]
    assert main(sweep) == 0, capsys.readouterr().err
    data = json.loads((out / "sweep.json").read_text())
    assert len(data["state"]["cells"]) == 2 and len(data["residual"]["cells"]) == 2


def test_a_file_path_and_dtype(tmp_path: Path) -> None:
    model = _checkpoint_dir(tmp_path / "m", "rwkv5")
    pth = next(model.glob("*.pth"))
    adapter = from_config(RwkvConfig(model=str(pth), device="cpu", dtype="bfloat16"))
    assert adapter.architecture == "rwkv5" and adapter.dtype == torch.bfloat16
    decay = adapter.model.blocks[0].att.time_decay
    assert decay.dtype == torch.float32  # decays stay float32, as in the reference
    out = adapter.forward(random_ids(1, 5), capture=["resid_post.1"], return_state=True)
    assert torch.isfinite(out.captures["resid_post.1"].float()).all()
    assert out.state is not None and out.state["wkv_state.0"].dtype == torch.float32


def test_world_tokenizer_is_the_default_without_tokenizer_files(tmp_path: Path) -> None:
    model = _checkpoint_dir(tmp_path / "m", "rwkv7", tokenizer=False)
    adapter = from_config(RwkvConfig(model=str(model), device="cpu"))
    tok = adapter.tokenizer
    assert type(tok).__name__ == "RwkvWorldTokenizer"
    ids = tok("Hello world")["input_ids"]
    assert ids == [33155, 40213]  # the World vocabulary's ids, as the rwkv package encodes them
    assert tok.decode(ids) == "Hello world"


def test_bad_specs_fail_in_one_line(tmp_path: Path) -> None:
    model = _checkpoint_dir(tmp_path / "m", "rwkv6")
    with pytest.raises(AdapterError, match=r"version = 7, but .* is an RWKV-6 checkpoint"):
        from_config(RwkvConfig(model=str(model), version="7", device="cpu"))
    with pytest.raises(AdapterError, match=r"cannot load model 'BlinkDL/rwkv-7-world/x.pth'"):
        from_config(RwkvConfig(model="BlinkDL/rwkv-7-world/x.pth"))  # offline in tests
    torch.save(tiny_state_dict("rwkv6"), model / "second.pth")
    with pytest.raises(AdapterError, match=r"several .pth files"):
        from_config(RwkvConfig(model=str(model)))
    bad = tmp_path / "bad.pth"
    torch.save({"weight": torch.zeros(2)}, bad)
    with pytest.raises(AdapterError, match=r"not a BlinkDL RWKV checkpoint"):
        from_config(RwkvConfig(model=str(bad)))
    with pytest.raises(AdapterError, match=r"RWKV-6 loads from a BlinkDL .pth"):
        from_config(RwkvConfig(model="RWKV/rwkv-4-169m-pile", version="6"))


def test_a_checkpoint_runs_inside_autointerp_run(
    tmp_path: Path, autointerp_cli, autointerp_llm_server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Caching an SAE on an RWKV-7 checkpoint's residual stream, explaining and scoring."""
    from safetensors.torch import save_file

    from autointerp.store import Store
    from autointerp.testing.runs import write_run_config

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-0123456789abcdef")
    autointerp_llm_server.responder = _answer
    gen = torch.Generator().manual_seed(0)
    sae = tmp_path / "sae.safetensors"
    enc = {"W_enc": torch.randn(32, 8, generator=gen), "W_dec": torch.randn(8, 32, generator=gen)}
    save_file({**enc, "b_enc": torch.zeros(8), "b_dec": torch.zeros(32)}, str(sae))
    source = f'name = "sae"\npath = "{sae.as_posix()}"\nsite = "resid_post.1"\nactivation = "relu"'
    path = write_run_config(
        tmp_path / "run.toml",
        base_url=autointerp_llm_server.openai_base_url,
        model=_checkpoint_dir(tmp_path / "m", "rwkv7"),
        n_latents=2,
        concurrency=2,
        source=source,
        top="max_failure_rate = 1.0",
    )
    path.write_text(path.read_text().replace('name = "transformers"', 'name = "rwkv"'))
    result = autointerp_cli("run", str(path), "--no-report")
    assert result.exit_code == 0, result.stderr
    with Store.open(tmp_path / "run") as store:
        (run,) = store.runs()
        assert store.latents(run.id) and store.explanations(run.id), store.failures(run.id)
        assert store.scores(run.id, "detection")


def _answer(request) -> str:
    turn = request.messages[-1].get("content") if request.messages else ""
    text = turn if isinstance(turn, str) else " ".join(b.get("text", "") for b in turn or ())
    n = sum(1 for line in text.splitlines() if line.startswith("Example "))
    return "Explanation: code words\nAnswer: [" + ", ".join(["1"] * n) + "]"
