"""HTML report at scale: time, peak Python memory and file sizes for synthetic runs.

Fills a real results store (examples with negatives, explanations, two scorers with per-example
predictions) for each size, then times ``write_report`` and measures its peak traced memory. A
streaming generator keeps the peak nearly flat as the number of latents grows (only the table's
numbers grow), and index.html stays small.

    python benchmarks/bench_report.py --sizes 5000 20000 [--baseline REV]

``--baseline REV`` also times the report generator of git revision REV (its render.py, loaded
from git) on the same store in its own fresh process, and prints the speed-up. REV must hold
plugins/autointerp-report (the report left core for that plugin).
"""

from __future__ import annotations

import argparse
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from autointerp_report.render import write_report

from autointerp.store import Store
from autointerp.types import Example, Explanation, LatentRef, Prediction, Score

SOURCE = "sae/resid_post.6"
VOCAB = [f" w{i}" for i in range(2000)]


def fill(run_dir: Path, n: int, per_group: int, width: int) -> None:
    rng = random.Random(0)
    store = Store.open(run_dir)
    run = store.start_run("bench", {})
    store.put_latents(
        run, SOURCE,
        [{"index": i, "frequency": 10 ** rng.uniform(-5, -1), "max_activation": 5.0}
         for i in range(n)],
    )  # fmt: skip
    for i in range(n):
        ref = LatentRef(SOURCE, i)
        examples = []
        for kind in ["top"] * per_group + ["quantile:0"] * per_group + ["random"] * per_group:
            toks = [rng.randrange(len(VOCAB)) for _ in range(width)]
            acts = [0.0 if kind == "random" or rng.random() < 0.8 else rng.uniform(0, 5)
                    for _ in range(width)]  # fmt: skip
            examples.append(Example(tuple(toks), tuple(VOCAB[t] for t in toks), tuple(acts), kind))
        store.put_examples(run, ref, examples)
        store.put_explanation(run, Explanation(ref, f"tokens about topic {i % 97}", "default"))
        for scorer in ("detection", "fuzzing"):
            preds = tuple(
                Prediction(j, float(rng.random() < 0.7), float(j < per_group))
                for j in range(2 * per_group)
            )
            store.put_score(run, Score(ref, scorer, "default", rng.random(), {}, preds))
    store.close()


def render(run_dir: Path, baseline: str | None = None) -> None:
    """Write the report in this fresh process; print seconds and peak RSS for the parent.
    With ``baseline``, the generator is that git revision's render.py."""
    writer = write_report
    if baseline:
        import importlib.util

        root = Path(__file__).resolve().parents[1]
        source = "plugins/autointerp-report/src/autointerp_report/render.py"
        code = subprocess.run(
            ["git", "show", f"{baseline}:{source}"],
            cwd=root, check=True, capture_output=True, text=True,
        ).stdout  # fmt: skip
        path = run_dir.parent / "baseline_render.py"
        path.write_text(code)
        spec = importlib.util.spec_from_file_location("autointerp_report._baseline", path)
        assert spec is not None and spec.loader is not None
        mod = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = mod  # dataclasses look their module up
        spec.loader.exec_module(mod)
        writer = mod.write_report
    t0 = time.perf_counter()
    writer(run_dir)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    workers = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024  # largest worker
    print(f"{time.perf_counter() - t0} {rss} {workers}")


def browse(index: Path, tmp: Path) -> tuple[float, float]:
    """Seconds until the table is ready in headless Chromium, then until the last latent's card
    (from the last card file) shows its tokens. Uses the browser fixture of the report plugin's
    tests."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "plugins/autointerp-report/tests/test_report.py"
    spec = importlib.util.spec_from_file_location("report_browser_test", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    gen = mod.browser.__wrapped__(tmp)
    tools = next(gen)
    try:
        t0 = time.perf_counter()
        tools.call("Page.navigate", url=index.resolve().as_uri())
        tools.wait_for("document.body && document.body.dataset.ready === '1'", timeout=300)
        t1 = time.perf_counter()
        tools.evaluate("document.getElementById('last').click();"
                       "document.querySelector('#rows tr:last-child').click()")  # fmt: skip
        tools.wait_for("document.querySelectorAll('#card .tok').length > 0", timeout=300)
        t2 = time.perf_counter()
        assert tools.errors() == [], tools.errors()
        return t1 - t0, t2 - t1
    finally:
        gen.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[5000, 20000])
    ap.add_argument("--examples", type=int, default=10, help="examples per group and latent")
    ap.add_argument("--width", type=int, default=32, help="tokens per example")
    ap.add_argument("--render", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--render-baseline", help=argparse.SUPPRESS)
    ap.add_argument("--baseline", help="git revision whose report generator to time as well")
    ap.add_argument(
        "--browser", action="store_true", help="also time the page in headless Chromium"
    )
    args = ap.parse_args()
    if args.render:
        render(args.render, args.render_baseline)
        return
    print("| latents | fill store | write report | latents/s | "
          "peak RSS (report process / largest worker) | index.html | data files | data total | "
          "page ready | last card shown |")  # fmt: skip
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n in args.sizes:
        with tempfile.TemporaryDirectory() as tmp:
            run_dir = Path(tmp) / "run"
            t0 = time.perf_counter()
            fill(run_dir, n, args.examples, args.width)
            fill_s = time.perf_counter() - t0
            if args.baseline:
                base = subprocess.run(
                    [sys.executable, __file__, "--render", str(run_dir),
                     "--render-baseline", args.baseline],
                    check=True, capture_output=True, text=True,
                ).stdout.split()  # fmt: skip
                print(f"| {n} | baseline {args.baseline} | {float(base[0]):.1f} s | "
                      f"{n / float(base[0]):.0f} | {int(base[1]) / 2**20:.0f} MiB | "
                      "| | | | |", flush=True)  # fmt: skip
            out = subprocess.run(
                [sys.executable, __file__, "--render", str(run_dir)],
                check=True, capture_output=True, text=True,
            ).stdout.split()  # fmt: skip
            secs, rss, worker_rss = float(out[0]), int(out[1]), int(out[2])
            if args.baseline:
                print(f"speed-up vs {args.baseline}: {float(base[0]) / secs:.2f}x", flush=True)
            index = run_dir / "report" / "index.html"
            data = list((index.parent / "data").glob("*.js"))
            total = sum(p.stat().st_size for p in data)
            ready = open_card = "-"
            if args.browser:
                ready, open_card = (f"{t:.2f} s" for t in browse(index, Path(tmp)))
            print(f"| {n} | {fill_s:.1f} s | {secs:.1f} s | {n / secs:.0f} | "
                  f"{rss / 2**20:.0f} / {worker_rss / 2**20:.0f} MiB | "
                  f"{index.stat().st_size / 1024:.0f} KiB | {len(data)} | "
                  f"{total / 2**20:.0f} MiB | {ready} | {open_card} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
