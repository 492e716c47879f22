"""``autointerp import``: bring published explanations (delphi, Neuronpedia, our export) into a run.

It reads the file, maps its module or layer onto the run's latents, prints what it imported and
what it skipped (one line per bad record), and writes a run config beside the run's own that
selects the ``imported`` explainer with the file's content hash pinned: ``autointerp run`` on it
adds a run to the same results store (same cache, same latents' examples) whose explanations are
the imported ones, scored by the run's scorers, so ``compare``, ``report`` and ``export`` treat
them like any other explainer's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from rich.console import Console

#: plain text: file names and records may hold brackets that rich would read as markup
console = Console(highlight=False, soft_wrap=True, markup=False)

#: problem lines printed before "... and N more"
SHOWN_PROBLEMS = 20


def import_command(
    file: Annotated[
        Path, typer.Argument(help="File or directory of explanations (delphi, Neuronpedia, ours).")
    ],
    run_dir: Annotated[
        Path, typer.Option("--run-dir", help="The run whose latents the explanations are for.")
    ],
    fmt: Annotated[
        Literal["auto", "delphi", "neuronpedia", "autointerp"],
        typer.Option("--format", help="Format of FILE (auto: detected from names and content)."),
    ] = "auto",
    source: Annotated[
        str | None,
        typer.Option(help="The file's module/layer id to map onto the run (6-res-jb, layers.6)."),
    ] = None,
    layer: Annotated[
        int | None, typer.Option(help="Use the file's explanations of this layer.")
    ] = None,
    pick: Annotated[
        str | None,
        typer.Option(help="Where a latent has several: the explainer, typeName or model to keep."),
    ] = None,
    latents: Annotated[
        Literal["matched", "imported", "run"],
        typer.Option(
            help="Latents to score: matched (the run's latents that have an imported "
            "explanation), imported (every imported one), run (all of the run's)."
        ),
    ] = "matched",
    out: Annotated[
        Path | None, typer.Option(help="Where to write the run config (RUN/imported.toml).")
    ] = None,
    run: Annotated[bool, typer.Option("--run", help="Run the written config right away.")] = False,
) -> None:
    """Import explanations others published and write a run config that scores them with the run's
    scorers (explainer `imported`); `autointerp run` on it adds them to the run's store."""
    from autointerp.config import ConfigError, dump_toml
    from autointerp_explainers.import_formats import (
        content_sha256,
        load_explanations,
        resolve_label,
    )

    base_id, base_config, refs = _base_run(run_dir)
    sources = sorted({r.source for r in refs})

    imported = load_explanations(file, fmt, pick=pick)
    for problem in imported.problems[:SHOWN_PROBLEMS]:
        console.print(f"skipped: {problem}")
    if len(imported.problems) > SHOWN_PROBLEMS:
        console.print(f"... and {len(imported.problems) - SHOWN_PROBLEMS} more skipped")
    console.print(imported.summary())
    if not imported.n_imported:
        raise ConfigError(f"{file}: no explanation could be imported")

    indices: set[int] = set()
    for run_source in sources:
        label = resolve_label(imported, run_source, source=source, layer=layer)
        table = imported.labels[label]
        mine = {r.index for r in refs if r.source == run_source}
        matched = mine & table.keys()
        console.print(
            f"{label} -> {run_source}: {len(table)} explanations, {len(matched)} of the run's "
            f"{len(mine)} latents have one"
        )
        chosen = {"matched": matched, "imported": set(table), "run": mine}[latents]
        indices |= chosen
    if not indices:
        raise ConfigError(
            f"{file}: none of the run's latents has an imported explanation; score the imported "
            "latents instead with --latents imported"
        )

    table_data = dict(base_config)
    explainer: dict[str, object] = {
        "name": "imported",
        "path": str(file.resolve()),
        "format": imported.format,
        "sha256": content_sha256(file),
    }
    for key, value in (("source", source), ("layer", layer), ("pick", pick)):
        if value is not None:
            explainer[key] = value
    table_data["explainer"] = explainer
    table_data["name"] = f"{table_data.get('name', 'run')}-imported"
    table_data["latents"] = dict(table_data.get("latents", {}))
    table_data["run_dir"] = str(run_dir.resolve())
    table_data.setdefault("latents", {})["indices"] = sorted(indices)
    target = out or run_dir / "imported.toml"
    target.write_text(dump_toml(table_data), encoding="utf-8")
    console.print(
        f"wrote {target}: {len(indices)} latents of run {base_id} (its config, explainer "
        f"imported); score them with: autointerp run {target}"
    )
    if run:
        from autointerp.cli import run_command

        run_command(file=target)


def _base_run(run_dir: Path) -> tuple[int, dict[str, Any], list[Any]]:
    """The run an import is for: the latest run of the directory's store with latents whose
    explainer is not ``imported`` (an earlier import's run is never the base of the next), with
    its recorded config and latents."""
    from autointerp.config import ConfigError
    from autointerp.store import open_run

    with open_run(run_dir) as (store, _):
        for record in reversed(store.runs()):
            explainer = record.config.get("explainer")
            name = explainer.get("name") if isinstance(explainer, dict) else None
            refs = [s.latent for s in store.latents(record.id)]
            if name != "imported" and refs:
                return record.id, record.config, refs
    raise ConfigError(
        f"{run_dir}: no run here has latents yet; run it first (autointerp run) so the imported "
        "explanations can be mapped onto its latents"
    )
