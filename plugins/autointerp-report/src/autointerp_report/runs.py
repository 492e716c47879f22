"""Opening finished runs for the comparison commands: a run directory (optionally ``DIR@ID`` for a
run id other than the latest), read through :class:`autointerp.store.Store`, labelled by directory
name and feature source."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from autointerp.errors import AutointerpError
from autointerp.store import RunNotFoundError, Store, open_run


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


@contextmanager
def open_run_input(path: Path, run_id: int | None) -> Iterator[tuple[Store, int]]:
    """A run given on the command line (its store and id, the latest if None), through core's
    :func:`autointerp.store.open_run`; its errors as :class:`RunInputError`."""
    try:
        with open_run(path, run_id) as (store, picked):
            yield store, picked
    except RunNotFoundError as exc:
        raise RunInputError(str(exc).replace("is this a run directory?", HINT)) from None


HINT = "give a run directory written by `autointerp run`"


def run_sources(store: Store, run_id: int, found: Iterable[str]) -> tuple[str, ...]:
    """The feature-source keys of a run: from its latent table, else ``found`` (the sources of
    its results)."""
    return tuple(store.latent_sources(run_id) or sorted(set(found)))


def unique_names(args: list[str], paths: list[Path]) -> list[str]:
    """Directory names, widened to the argument as given where two runs share a name."""
    names = [p.resolve().name or str(p) for p in paths]
    return [a if names.count(n) > 1 else n for a, n in zip(args, names, strict=True)]
