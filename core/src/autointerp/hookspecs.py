"""Every hook an autointerp plugin may implement.

A plugin is a module named by an entry point in the ``autointerp`` group. It implements any of the
hooks below with ``autointerp.hookimpl``. Registration hooks are called once, when the plugin
manager loads plugins (for every command, even ``autointerp plugins``): keep them cheap. Register a
component by name and by a *factory path* (``"package.module:Class"``) so that heavy imports (torch,
transformers, SDKs) happen only when a run builds that component.

Each ``register`` callback takes::

    register(name, factory, config=None, description="")

- ``name``: unique within the component kind (two plugins with one name are an error naming both).
- ``factory``: ``"module:attr"`` (imported lazily) or a callable; called as ``factory(config)``
  with the validated config instance and must return the component.
- ``config``: a subclass of :class:`autointerp.config.ComponentConfig` (extra fields forbidden,
  frozen) holding the component's options with defaults and field docs; omit for no options.
- ``description``: one line shown by ``autointerp plugins``.

A plugin module declares the versions of this contract it was written for as ``PLUGIN_API``, a
PEP 440 specifier over :data:`PLUGIN_API` (``PLUGIN_API = ">=1,<2"``). A plugin whose range
excludes the installed core's, or whose distribution requires another version of ``autointerp``,
is listed by ``autointerp plugins`` as *incompatible*, with the reason, and registers nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from pathlib import Path

    from autointerp.plugins import Register

#: the version of this contract: the major part changes when a hook or a component contract
#: changes incompatibly, the minor part when one is added
PLUGIN_API = "1.0"

hookspec = pluggy.HookspecMarker("autointerp")
hookimpl = pluggy.HookimplMarker("autointerp")


@hookspec
def autointerp_register_model_adapters(register: Register) -> None:
    """Register model adapters: a model family behind the adapter contract (tokenizer, sites,
    forward with captures and interventions, unembedding, RNN ``step``).

    Called once at plugin load. Returns nothing; call ``register`` for each adapter.
    """


@hookspec
def autointerp_register_feature_sources(register: Register) -> None:
    """Register feature sources: turn a site's activations into sparse latent activations
    (SAEs, transcoders, top-k neurons).

    Called once at plugin load. Returns nothing; call ``register`` for each source.
    """


@hookspec
def autointerp_register_explainers(register: Register) -> None:
    """Register explainers: turn a latent's examples into a natural-language explanation,
    usually through an LLM client.

    Called once at plugin load. Returns nothing; call ``register`` for each explainer.
    """


@hookspec
def autointerp_register_scorers(register: Register) -> None:
    """Register scorers: rate how well an explanation predicts a latent's behaviour
    (detection, fuzzing, simulation, surprisal, embedding, intervention ...).

    Called once at plugin load. Returns nothing; call ``register`` for each scorer.
    """


@hookspec
def autointerp_register_llm_clients(register: Register) -> None:
    """Register LLM clients: chat completion endpoints (hosted APIs, OpenAI-compatible servers,
    an offline local model) used by explainers and scorers.

    Called once at plugin load. Returns nothing; call ``register`` for each client.
    """


@hookspec
def autointerp_register_executors(register: Register) -> None:
    """Register executors: where work units ((site, latent range) shards) run — in process,
    a local pool, a Ray cluster.

    Called once at plugin load. Returns nothing; call ``register`` for each executor.
    """


@hookspec
def autointerp_register_commands(cli: Any) -> None:
    """Add sub-commands to the ``autointerp`` command line.

    ``cli`` is the root :class:`typer.Typer` app: use ``@cli.command()`` or ``cli.add_typer(...)``.
    Called once when the CLI starts, before arguments are parsed. Import heavy modules inside the
    command functions, not at module level. Returns nothing.
    """


@hookspec
def autointerp_run_finished(
    run_dir: Path, run_id: int, status: str, skip: frozenset[str]
) -> str | None:
    """React to a finished run: write an output from its results (the HTML report), notify, upload.

    Called once when ``autointerp run`` (or ``explain`` / ``score``) has finished a run and recorded
    its status, after the run's summary is printed: ``status`` is ``"finished"``, or ``"failed"``
    when too many latents failed (the results of the others are stored; the command then exits 1).
    Not called for an interrupted run or one stopped by an error. ``run_dir`` is the run directory
    (its ``results.sqlite``), ``run_id`` the run in that store. ``skip`` holds the outputs the user
    turned off, e.g. ``"report"`` for ``--no-report``: honour the names that concern you.

    Return a one-line message for the user (printed after the summary, e.g. where a file was
    written and how to open it) or None. Must not raise for its own failures: the run's results
    are already safe, so return a message saying what went wrong and how to retry instead. An
    implementation that raises anyway is reported in one line and the other implementations still
    run.
    """
