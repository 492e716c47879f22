"""Shared plumbing of the paper-findings scripts (imported by each; not run on its own).

Each script builds one or more run configs from a small offline base (the packaged SmolLM2-135M,
Python's language reference, the packaged Qwen2.5-Coder-1.5B in the quickstart's small-llm mode),
writes them as TOML files under ``OUT/configs/`` (each one also runnable alone with
``autointerp run FILE``), runs them with :func:`autointerp.run`, then calls ``autointerp analyze``
for the tables, figures and JSON, and writes ``OUT/results.md``.

The same flags on every script scale it: ``--config FILE`` (a TOML laid over the base: a served
model, more latents, another subject model), ``--llm-base-url``/``--llm-model`` (any
OpenAI-compatible endpoint, e.g. vLLM), ``--latents``, ``--scorers``, ``--set KEY=VALUE``;
``--runs DIR`` lets several scripts share run directories (one cache, LLM answers paid once).
``--dry-run`` writes and validates the configs and prints the commands, without running anything.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import json
import shlex
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from autointerp.config import apply_override, dump_toml, merge_file, read_toml

#: the small offline size: minutes on 2 CPU cores (sizes are set here because a config file,
#: unlike the bare quickstart, gets the parity sizes of the peer tools)
BASE: dict[str, Any] = {
    "seed": 0,
    "mode": "small-llm",  # one example per scorer prompt, AUROC of P(1): what the 1.5B can do
    "model": {"name": "transformers"},  # the packaged smollm2-135m
    "feature_source": {"name": "neurons", "layer": 6},
    "explainer": {"name": "default"},
    "llm": {"name": "local"},  # packaged Qwen2.5-Coder-1.5B through llama.cpp, offline
    "corpus": {"path": "builtin:python-docs", "n_tokens": 16384},
    "latents": {"n": 4, "min_activations": 10, "n_train": 10, "n_test": 10, "n_negatives": 4},
}


class Finding:
    """One experiment: its parsed flags, output folder and the runs and analyses it made."""

    def __init__(self, name: str, doc: str, *, latents: int, scorers: str = "detection") -> None:
        self.name = name
        self.default_latents, self.default_scorers = latents, scorers
        self.parser = argparse.ArgumentParser(
            description=doc.split("\n\n")[0], epilog="See examples/paper-findings/README.md."
        )
        p = self.parser
        p.add_argument(
            "--out",
            type=Path,
            default=Path("runs/paper-findings") / name,
            help="folder for runs, configs, figures and results.md",
        )
        p.add_argument(
            "--runs",
            type=Path,
            default=None,
            help="where the run directories go (default OUT); scripts given the same folder "
            "share a run directory where their runs share a source: one cache, and LLM answers "
            "already paid for are reused",
        )
        p.add_argument(
            "--config",
            type=Path,
            default=None,
            help="TOML laid over the small base config (a served LLM, more latents)",
        )
        p.add_argument(
            "--latents",
            type=int,
            default=None,
            help=f"latents per run (default {latents}, or --config's)",
        )
        p.add_argument(
            "--scorers",
            default=None,
            help=f"comma-separated scorers (default {scorers}, or --config's)",
        )
        p.add_argument("--model", default=None, help="subject model (hub name or local path)")
        p.add_argument(
            "--llm-base-url",
            default=None,
            help="an OpenAI-compatible endpoint (vLLM, llama.cpp, Ollama): .../v1",
        )
        p.add_argument("--llm-model", default=None, help="the endpoint's model name")
        p.add_argument(
            "--set",
            dest="sets",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="override any config field, as `autointerp run --set` (repeat)",
        )
        p.add_argument(
            "--dry-run",
            action="store_true",
            help="write and validate the configs, print the commands; run nothing",
        )
        p.add_argument("--no-report", action="store_true", help="skip each run's HTML report")
        self.args: argparse.Namespace = argparse.Namespace()
        self.lines: list[str] = []  # results.md, built as the script goes
        self.started = time.monotonic()

    # -- configs ---------------------------------------------------------------------------------

    def parse(self, argv: Sequence[str] | None = None) -> argparse.Namespace:
        self.args = self.parser.parse_args(argv)
        self.out.mkdir(parents=True, exist_ok=True)
        return self.args

    @property
    def out(self) -> Path:
        return Path(self.args.out)

    @property
    def runs(self) -> Path:
        return Path(self.args.runs or self.args.out)

    def config(self, name: str, run_dir: Path, **tables: Any) -> dict[str, Any]:
        """The base config, laid over by ``--config``, the flags, then ``tables`` (this run's
        own: ``feature_source=...``, ``latents={...}`` merged into the base's tables), then
        ``--set``; named ``name`` and stored in ``run_dir``."""
        a = self.args
        data = copy.deepcopy(BASE)
        data["latents"]["n"] = self.default_latents
        data["scorers"] = [{"name": s} for s in self.default_scorers.split(",")]
        if a.config is not None:
            _merge(data, read_toml(a.config))
        if a.latents is not None:
            data["latents"]["n"] = a.latents
        if a.scorers is not None:
            data["scorers"] = [{"name": s.strip()} for s in a.scorers.split(",") if s.strip()]
        if a.model:
            data["model"]["model"] = a.model
        if a.llm_base_url:
            if data["llm"].get("name") != "openai-compatible":  # the local client's options go
                data["llm"] = {"name": "openai-compatible"}
            data["llm"]["base_url"] = a.llm_base_url
        if a.llm_model:
            data["llm"]["model"] = a.llm_model
        _merge(data, tables)
        data["name"] = name
        data["run_dir"] = run_dir.as_posix()
        for assignment in a.sets:
            apply_override(data, assignment)
        return data

    def write_config(self, data: Mapping[str, Any]) -> Path:
        path = self.out / "configs" / f"{data['name']}.toml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(dump_toml(data), encoding="utf-8")
        return path

    # -- running ---------------------------------------------------------------------------------

    def run(self, data: Mapping[str, Any], stages: Sequence[str] | None = None) -> str:
        """Run (or, with ``--dry-run``, validate) one config; returns the run as ``DIR@ID`` for
        ``autointerp analyze`` (in a dry run, the directory)."""
        path = self.write_config(data)
        run_dir = Path(str(data["run_dir"]))
        if self.args.dry_run:
            validate(path)
            extra = "" if stages is None else "  # stages: " + ", ".join(stages)
            self.say(f"would run: autointerp run {path}{extra}")
            return run_dir.as_posix()
        import autointerp

        self.say(f"running {data['name']} ({path})")
        t0 = time.monotonic()
        kwargs: dict[str, Any] = {
            "report": not self.args.no_report,
            "progress": False,
            "wait": True,
        }
        if stages is not None:
            kwargs["stages"] = tuple(stages)
        from autointerp.errors import AutointerpError

        try:
            handle = autointerp.run(path, check=False, **kwargs)
        except AutointerpError as exc:  # one line, as the command prints it
            raise SystemExit(f"error: {data['name']}: {exc}") from None
        except KeyboardInterrupt:  # the run is marked interrupted; a rerun resumes it
            print(f"interrupted: {data['name']}; rerun the same command to resume", flush=True)
            raise SystemExit(130) from None
        self.say(f"  {data['name']}: {handle.status} in {time.monotonic() - t0:.0f} s")
        return f"{Path(handle.dir).as_posix()}@{handle.id}"

    def analyze(self, analysis: str, runs: Sequence[str], *options: str) -> dict[str, Any] | None:
        """``autointerp analyze ANALYSIS RUNS --out OUT/figures --json``: prints the command,
        returns its data (None in a dry run). The figure and JSON land in ``OUT/figures``."""
        args = ["analyze", analysis, *runs, "--out", (self.out / "figures").as_posix(), *options]
        if self.args.dry_run:
            shared = (
                "  # each as DIR@ID (runs sharing a directory)"
                if len(set(runs)) < len(runs)
                else ""
            )
            self.say("would run: autointerp " + shlex.join(args) + shared)
            return None
        text = cli(*args, "--json")
        return json.loads(text)

    def compare(self, runs: Sequence[str]) -> dict[str, Any] | None:
        """``autointerp compare RUNS --json`` (medians, bootstrap intervals, tests)."""
        if self.args.dry_run:
            self.say("would run: autointerp " + shlex.join(["compare", *runs]))
            return None
        return json.loads(cli("compare", *runs, "--json"))

    # -- results ---------------------------------------------------------------------------------

    def say(self, line: str) -> None:
        print(line, flush=True)

    def add(self, *lines: str) -> None:
        self.lines.extend(lines)

    def table(self, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        self.lines.append("| " + " | ".join(header) + " |")
        self.lines.append("|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|")
        for row in rows:
            self.lines.append("| " + " | ".join(fmt(v) for v in row) + " |")
        self.lines.append("")

    def figures(self, *data: dict[str, Any] | None) -> None:
        """List the figures the analyses wrote, relative to ``OUT``."""
        files = [f["file"] for d in data if d for f in d.get("figures", [])]
        if files:
            rel = [Path(f).resolve().relative_to(self.out.resolve()).as_posix() for f in files]
            self.add("Figures: " + ", ".join(f"[{Path(r).name}]({r})" for r in rel), "")

    def finish(self, title: str) -> Path | None:
        """Write ``OUT/results.md`` (not in a dry run) and print it."""
        if self.args.dry_run:
            self.say(f"dry run: configs in {self.out / 'configs'}; nothing was run")
            return None
        minutes = (time.monotonic() - self.started) / 60
        cmd = "python " + shlex.join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]])
        head = [f"# {title}", "", f"`{cmd}` ({minutes:.1f} min)", ""]
        text = "\n".join(head + self.lines).rstrip() + "\n"
        path = self.out / "results.md"
        path.write_text(text, encoding="utf-8")
        print("\n" + text)
        self.say(f"wrote {path}")
        return path


def _merge(data: dict[str, Any], overlay: Mapping[str, Any]) -> None:
    """Lay ``overlay`` over ``data`` as a config file lies over the defaults, except that a
    table keeping its component (or naming none) is merged key by key."""
    for key, value in overlay.items():
        current = data.get(key)
        same = isinstance(value, Mapping) and isinstance(current, dict)
        if same and value.get("name", current.get("name")) == current.get("name"):
            current.update(copy.deepcopy(dict(value)))
            continue
        merge_file(data, {key: copy.deepcopy(value)})


def validate(path: Path) -> None:
    """Check a config file as ``autointerp config validate`` does (fields, components, needs),
    without building the command line; exit with its problems, one line each."""
    from autointerp.config import check_config, load_data
    from autointerp.errors import AutointerpError
    from autointerp.pipeline import plan_run
    from autointerp.plugins import get_plugin_manager

    try:
        config, problems = check_config(load_data(path, []), str(path))
        if config is not None and not problems:
            plan_run(config, get_plugin_manager(), source=str(path))
    except AutointerpError as exc:
        problems = [str(exc)]
    if problems:
        raise SystemExit("\n".join(problems))


def cli(*args: str) -> str:
    """Run ``autointerp ARGS`` in this process; return its stdout, or exit with its error."""
    from autointerp.cli import main

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        code = main(list(args))
    if code:
        sys.stdout.write(buffer.getvalue())
        raise SystemExit(f"autointerp {shlex.join(args)} failed (exit {code})")
    return buffer.getvalue()


def fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def mean_scores(distributions: Mapping[str, Any] | None) -> dict[tuple[str, str], Any]:
    """``{(run label, scorer): row}`` from ``autointerp analyze distributions`` data; each row
    has n, mean, median, q25, q75."""
    if not distributions:
        return {}
    return {
        (row["run"], scorer): row
        for scorer, block in distributions["scorers"].items()
        for row in block["runs"]
    }
