"""Workers alive on the Ray cluster, for the run's progress display: a background thread reads the
cluster's nodes, CPUs in use and the caching actors' states every ``interval`` seconds, and
:meth:`WorkerWatch.line` returns its latest reading at once (the display refreshes ten times a
second and must never wait on the cluster)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("autointerp.ray")

#: actor states of an actor being created, and of one whose process died and comes back
_STARTING = frozenset({"DEPENDENCIES_UNREADY", "PENDING_CREATION"})


@dataclass(frozen=True)
class Reading:
    """One look at the cluster."""

    nodes: int  # alive
    lost: int  # nodes seen alive by this run, now dead
    cpus: float  # of the alive nodes
    gpus: float
    busy_cpus: float  # held by tasks and actors
    actors: Sequence[str] = field(default=())  # the caching actors' states (ALIVE, RESTARTING…)


def describe(r: Reading) -> str:
    """``ray: 2/2 actors alive · 1 node · 2 CPUs, 2 busy`` (the display's line)."""
    parts = []
    if r.actors:
        alive = sum(s == "ALIVE" for s in r.actors)
        known = any(r.actors)  # states cannot be read over Ray Client
        text = f"{alive}/{len(r.actors)} actors alive" if known else f"{len(r.actors)} actors"
        extra = [
            f"{n} {what}"
            for n, what in (
                (sum(s in _STARTING for s in r.actors), "starting"),
                (sum(s == "RESTARTING" for s in r.actors), "restarting"),
                (sum(s == "DEAD" for s in r.actors), "dead"),
            )
            if n
        ]
        parts.append(text + (f" ({', '.join(extra)})" if extra else ""))
    parts.append(f"{r.nodes} node" + ("s" if r.nodes != 1 else ""))
    resources = f"{r.cpus:g} CPU" + ("s" if r.cpus != 1 else "")
    if r.gpus:
        resources += f", {r.gpus:g} GPU" + ("s" if r.gpus != 1 else "")
    parts.append(f"{resources}, {r.busy_cpus:g} busy")
    if r.lost:
        parts.append(f"{r.lost} node{'s' if r.lost != 1 else ''} lost")
    return "ray: " + " · ".join(parts)


class WorkerWatch:
    """Reads the connected cluster every ``interval`` seconds in a daemon thread, until
    :meth:`stop`; ``actors()`` gives the actor handles whose states to show (may change)."""

    def __init__(self, actors: Callable[[], Iterable[Any]], interval: float = 1.0) -> None:
        self._actors = actors
        self.interval = interval
        self._seen: set[str] = set()  # node ids seen alive
        self._line = ""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ray-worker-watch", daemon=True)

    def start(self) -> WorkerWatch:
        self._thread.start()
        return self

    @property
    def line(self) -> str:
        return self._line

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)  # a cluster that stopped answering may hold it
        self._line = ""

    def _run(self) -> None:
        while not self._stop.is_set():
            self.read()
            self._stop.wait(self.interval)

    def read(self) -> str:
        """Look at the cluster now; the new line (also what :attr:`line` returns)."""
        try:
            line = describe(self._reading())
        except Exception as exc:  # the cluster went away, or a call of this Ray version moved
            log.debug("reading the Ray cluster failed", exc_info=True)
            line = f"ray: cluster not answering ({type(exc).__name__})"
        if not self._stop.is_set():
            self._line = line
        return line

    def _reading(self) -> Reading:
        import ray

        alive = [n for n in ray.nodes() if n.get("Alive")]
        ids = {str(n.get("NodeID")) for n in alive}
        self._seen |= ids
        cpus = sum(float(n.get("Resources", {}).get("CPU", 0)) for n in alive)
        gpus = sum(float(n.get("Resources", {}).get("GPU", 0)) for n in alive)
        free = float(ray.available_resources().get("CPU", 0))
        return Reading(
            nodes=len(alive), lost=len(self._seen - ids), cpus=cpus, gpus=gpus,
            busy_cpus=max(0.0, cpus - free), actors=actor_states(list(self._actors())),
        )  # fmt: skip


def actor_states(actors: Sequence[Any]) -> tuple[str, ...]:
    """Each actor's state in the cluster's actor table (``ALIVE``, ``RESTARTING``, ``DEAD``…),
    read from the GCS directly: Ray's public state API needs the dashboard, which clusters may
    run without. "" for an actor it cannot read (e.g. over Ray Client)."""
    if not actors:
        return ()
    from ray._private.state import state

    out = []
    for actor in actors:
        try:
            out.append(str(state.actor_table(actor._actor_id.hex()).get("State", "")))
        except Exception:
            out.append("")
    return tuple(out)


def status_column(status: Callable[[], str]) -> Any:
    """A rich progress column showing ``status()`` (for displays the plugin draws itself)."""
    from rich.progress import ProgressColumn
    from rich.text import Text

    class Status(ProgressColumn):
        def render(self, task: Any) -> Text:
            return Text(status())

    return Status()
