"""Opening finished runs for the comparison commands: a run directory (optionally ``DIR@ID`` for a
run id other than the latest), read through :class:`autointerp.store.Store`, labelled by directory
name and feature source."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from autointerp.errors import AutointerpError
from autointerp.store import STORE_FILENAME, Store
from autointerp.types import LatentRef


class RunInputError(AutointerpError):
    """A run given to ``compare`` or ``similarity`` cannot be used (no store, run or scores)."""


_SITE_LAYER = re.compile(r"\.(\d+)$")


@dataclass(frozen=True)
class RunRef:
    """A run chosen on the command line: its directory, run id and display label."""

    path: Path
    run_id: int
    name: str
    sources: tuple[str, ...]

    @property
    def label(self) -> str:
        """``dirname (source)``, e.g. ``sae-l6 (sae/resid_post.6)``."""
        return f"{self.name} ({', '.join(self.sources)})" if self.sources else self.name

    @property
    def layer(self) -> int | None:
        """The layer of the run's site when it has one source with a numbered site."""
        if len(self.sources) != 1:
            return None
        m = _SITE_LAYER.search(self.sources[0])
        return int(m.group(1)) if m else None


def parse_run_arg(arg: str | Path) -> tuple[Path, int | None]:
    """``DIR`` or ``DIR@ID`` (when ``DIR@ID`` is not itself a directory)."""
    text = str(arg)
    path = Path(text)
    if not path.exists() and "@" in text:
        head, _, tail = text.rpartition("@")
        if tail.isdigit():
            return Path(head), int(tail)
    return path, None


def open_store(path: Path) -> Store:
    """The store of a run directory; a one-line error if the directory holds none."""
    if not (path / STORE_FILENAME).is_file():
        where = "does not exist" if not path.exists() else f"has no {STORE_FILENAME}"
        raise RunInputError(f"{path}: {where}; give a run directory written by `autointerp run`")
    return Store(path / STORE_FILENAME)


def resolve_run(store: Store, path: Path, run_id: int | None) -> int:
    """The requested run id, or the latest run's."""
    runs = store.runs()
    if not runs:
        raise RunInputError(f"{path}: the store holds no run yet")
    if run_id is None:
        return runs[-1].id
    if run_id not in {r.id for r in runs}:
        ids = ", ".join(str(r.id) for r in runs)
        raise RunInputError(f"{path}@{run_id}: no run {run_id}; runs here: {ids}")
    return run_id


def run_sources(store: Store, run_id: int, latents: set[LatentRef]) -> tuple[str, ...]:
    """The feature-source keys of a run: from its latent table, else from its results."""
    sources = {s.latent.source for s in store.latents(run_id)} or {r.source for r in latents}
    return tuple(sorted(sources))


def unique_names(args: list[str], paths: list[Path]) -> list[str]:
    """Directory names, widened to the argument as given where two runs share a name."""
    names = [p.resolve().name or str(p) for p in paths]
    return [a if names.count(n) > 1 else n for a, n in zip(args, names, strict=True)]
