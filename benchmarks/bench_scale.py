"""Time and peak RSS per stage at 10k, 100k and 1M latents, then status, export and report.

    python benchmarks/bench_scale.py --workdir /work/scale [--latents 10000 100000 1000000]
        [--executor in-process|ray] [--width 1048576] [--tokens 524288]

Setup: a random tiny GPT-2 and the ``hashed`` source of ``--width`` latents (``--k`` per token,
each latent an n-gram hash: no forward pass; ``--source sae``: a random TopK SAE, whose 1M-wide
encoder costs ~10 ms a token here), cached once on ``--tokens`` tokens of the built-in corpus so
that most latents fire; an
OpenAI-compatible server in its own process answering at once (bench_memory_latents.py's). Each
size gets its own run directory over that one cache and runs, each command in a fresh process:
``autointerp explain`` (latent choice, examples, explanations), ``autointerp score`` (detection +
fuzzing), then ``status``, ``export`` and ``report``. Wall time and peak RSS (``wait4``) of every
command are appended to ``WORKDIR/segments.jsonl``; the table sums the segments of a command, so
an interrupted size (Ctrl-C, a session's end) resumes where it stopped when the same command runs
again, and its time still adds up.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_memory_latents import SERVER, write_config

COMMANDS = ("explain", "score", "status", "export", "report")


FIXTURE = """
import sys
from pathlib import Path
import torch
from safetensors.torch import save_file
from autointerp.testing.adapters import save_tiny, tiny_model

root, width = Path(sys.argv[1]), int(sys.argv[2])
save_tiny(tiny_model("gpt2"), root / "model")
g = torch.Generator().manual_seed(0)
d = 32  # the tiny model's width
if width:
    save_file({"W_enc": torch.randn(d, width, generator=g), "b_enc": torch.zeros(width),
               "W_dec": torch.randn(width, d, generator=g), "b_dec": torch.zeros(d)},
              str(root / "sae.safetensors"))
"""


def fixture(root: Path, width: int) -> None:
    """The tiny model and (``width`` > 0) a random SAE, written once by a child process: this one
    stays small, so its children's peak RSS (``wait4``) is theirs alone."""
    if not (root / "model").exists():
        subprocess.run([sys.executable, "-c", FIXTURE, str(root), str(width)], check=True)


def configure(root: Path, name: str, run_dir: Path, url: str, n: int, args: Any) -> Path:
    config = write_config(root / f"{name}.toml", run_dir, root, url, n, args)
    extra = "\n[corpus]\nbatch_size = 2\n"  # 128 tokens x 1M latents of dense codes per batch
    text = config.read_text(encoding="utf-8").replace("\n[corpus]\n", extra, 1)
    if args.source == "hashed":
        start = text.index("[feature_source]")
        end = text.index("[explainer]")
        hashed = f"width = {args.width}\nk = {args.k}\nn = {args.ngram}"
        text = (text[:start] + f'[feature_source]\nname = "hashed"\n{hashed}\n'
                'site = "resid_post.1"\n\n' + text[end:])  # fmt: skip
    if args.executor != "in-process":
        text += f'\n[executor]\nname = "{args.executor}"\n'
    config.write_text(text, encoding="utf-8")
    return config


def timed(
    root: Path, key: dict[str, Any], argv: list[str], log: Path, limit_s: float | None = None
) -> dict[str, Any]:
    """Run ``argv`` (an autointerp command line), append its segment to segments.jsonl. Past
    ``limit_s`` the command gets SIGTERM (it stops, keeping its finished work: a partial
    segment; the next invocation resumes it)."""
    t0 = time.perf_counter()
    with log.open("ab") as out:
        child = subprocess.Popen([sys.executable, "-m", "autointerp", *argv],
                                 stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
        timer = threading.Timer(limit_s, child.terminate) if limit_s else None
        if timer is not None:
            timer.start()
        _, status, usage = os.wait4(child.pid, 0)
        if timer is not None:
            timer.cancel()
    rc = os.waitstatus_to_exitcode(status)
    partial = rc == 143 and limit_s is not None
    row = {**key, "rc": 0 if partial else rc, "partial": partial,
           "wall_s": time.perf_counter() - t0, "cpu_s": usage.ru_utime + usage.ru_stime,
           "peak_mib": usage.ru_maxrss // 1024, "at": time.time()}  # fmt: skip
    with (root / "segments.jsonl").open("a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")
    print(f"  {key}: exit {row['rc']}, {row['wall_s']:.1f} s, peak {row['peak_mib']} MiB",
          flush=True)  # fmt: skip
    if row["rc"]:
        raise SystemExit(f"{argv[0]} failed (exit {row['rc']}): see {log}")
    return row


def done(root: Path, key: dict[str, Any]) -> bool:
    """Whether segments.jsonl holds a finished (not partial, exit 0) segment of ``key``."""
    path = root / "segments.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    return any(
        all(r.get(k) == v for k, v in key.items()) and not r.get("rc") and not r.get("partial")
        for r in rows
    )


def table(root: Path) -> None:
    """Per size, each command's wall seconds, CPU seconds (where recorded) and peak RSS;
    explain/score segments of one size add up (resumed), readers show their latest run."""
    rows = [json.loads(line) for line in (root / "segments.jsonl").read_text().splitlines()]
    cells: dict[tuple[str, int], dict[str, list[float]]] = {}
    finished = {(r["executor"], r["latents"], r["command"]) for r in rows if not r.get("partial")}
    for r in rows:
        if r.get("rc"):
            continue
        size = cells.setdefault((r["executor"], r["latents"]), {})
        wall, cpu, peak, parts = size.get(r["command"], [0.0, 0.0, 0, 0])
        if r["command"] not in ("explain", "score"):
            wall, cpu, peak, parts = 0.0, 0.0, 0, 0
        size[r["command"]] = [wall + r["wall_s"], cpu + r.get("cpu_s", float("nan")),
                              max(peak, r["peak_mib"]), parts + 1]  # fmt: skip
    columns = ("cache", *COMMANDS)
    heads = " | ".join(f"{c}: wall s, CPU s, MiB" for c in columns)
    print(f"| executor | latents | {heads} |")
    print("|---|---:|" + "---:|" * len(columns))
    for (executor, n), size in sorted(cells.items()):
        out = []
        for c in columns:
            if c not in size:
                out.append("")
                continue
            wall, cpu, peak, parts = size[c]
            text = f"{wall:.1f}, {cpu:.1f}, {peak:.0f}"
            if parts > 1:
                text += f" ({parts} parts)"
            if (executor, n, c) not in finished:
                text += " (unfinished)"
            out.append(text)
        print(f"| {executor} | {n:,} | " + " | ".join(out) + " |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workdir", type=Path, required=True)
    p.add_argument("--latents", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    p.add_argument("--executor", default="in-process")
    p.add_argument("--mode", default="economy")
    p.add_argument("--width", type=int, default=1_048_576)
    p.add_argument("--k", type=int, default=16)
    p.add_argument("--ngram", type=int, default=8, help="hashed: n-gram length")
    p.add_argument("--source", choices=("hashed", "sae"), default="hashed")
    p.add_argument("--tokens", type=int, default=524_288)
    p.add_argument("--segment-s", type=float, default=None,
                   help="stop explain/score after this many seconds (resumable); the readers "
                   "then run on the partial run")  # fmt: skip
    p.add_argument("--commands", nargs="+", choices=COMMANDS, default=list(COMMANDS),
                   help="run only these commands (in their usual order), e.g. one explain "
                   "segment of a 1M-latent run in a session")  # fmt: skip
    p.add_argument("--table", action="store_true", help="only print the table of segments")
    args = p.parse_args()
    root = args.workdir.resolve()
    root.mkdir(parents=True, exist_ok=True)
    if args.table:
        return table(root)
    fixture(root, args.width if args.source == "sae" else 0)
    # the same port on every invocation: the LLM endpoint is part of a run's identity, so a
    # resumed size must find the URL it began with
    port_file = root / "server-port"
    port = port_file.read_text().strip() if port_file.exists() else "0"
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER, port],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert server.stdin is not None and server.stdout is not None
    url = server.stdout.readline().strip()
    port_file.write_text(url.rsplit(":", 1)[1].split("/")[0])
    try:
        shared = root / "cache-run"
        if not list(shared.glob("cache/*/manifest.json")) or (shared / ".caching").exists():
            (shared).mkdir(exist_ok=True)
            (shared / ".caching").touch()
            config = configure(root, "cache", shared, url, 1, args)
            key = {"executor": args.executor, "latents": 0, "command": "cache"}
            timed(root, key, ["explain", str(config)], root / "cache.log")
            (shared / ".caching").unlink()
        for n in args.latents:
            run_dir = root / f"{args.executor}-{n}"
            run_dir.mkdir(exist_ok=True)
            if not (run_dir / "cache").exists():
                (run_dir / "cache").symlink_to(shared / "cache", target_is_directory=True)
            config = configure(root, f"{args.executor}-{n}", run_dir, url, n, args)
            log = root / f"{args.executor}-{n}.log"
            for command in (c for c in COMMANDS if c in args.commands):
                key = {"executor": args.executor, "latents": n, "command": command}
                if command in ("explain", "score") and done(root, key):
                    continue  # finished by an earlier invocation
                staged = command in ("explain", "score")  # the report is its own command
                argv = [command, str(config), "--no-report"] if staged else [command, str(run_dir)]
                limit = args.segment_s if staged else None
                # unfinished explain: score scores what was explained, the readers read it
                timed(root, key, argv, log, limit)
    finally:
        server.stdin.close()
        server.wait(timeout=60)
    table(root)


if __name__ == "__main__":
    main()
