"""The ``autointerp`` command. Plugins add sub-commands through ``autointerp_register_commands``."""

from __future__ import annotations

import contextlib
import difflib
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping
from itertools import islice
from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from autointerp import __version__
from autointerp.adapter_cli import AdapterOpt, ModelOpt, OptionOpt, ThreadsOpt
from autointerp.errors import AutointerpError, ConfigError, disk_full, disk_full_message

console = Console()
err_console = Console(stderr=True)

app = typer.Typer(
    name="autointerp",
    help="Automated interpretability of language models, built from plugins.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
config_app = typer.Typer(help="Show or validate run configs.", no_args_is_help=True)
app.add_typer(config_app, name="config")

_state = {"debug": False}


def _version(value: bool) -> None:
    if value:
        console.print(f"autointerp {__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def main_callback(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")] = False,
) -> None:
    _state["debug"] = debug


def _plugins() -> Any:
    from autointerp.plugins import get_plugin_manager

    return get_plugin_manager()


# -- interruptions ------------------------------------------------------------------------------

#: exit codes of a command stopped by Ctrl-C (SIGINT) or SIGTERM: 128 + the signal's number
EXIT_INTERRUPTED = 128 + signal.SIGINT
EXIT_TERMINATED = 128 + signal.SIGTERM


class _Interruption:
    """What stopped a command: ``signal_name`` is "SIGTERM" once one arrived (else Ctrl-C)."""

    signal_name: str | None = None

    @property
    def exit_code(self) -> int:
        return EXIT_TERMINATED if self.signal_name == "SIGTERM" else EXIT_INTERRUPTED

    @property
    def how(self) -> str:
        return f"interrupted by {self.signal_name}" if self.signal_name else "interrupted"


@contextlib.contextmanager
def _sigterm_as_ctrl_c() -> Iterator[_Interruption]:
    """For the block, SIGTERM does what Ctrl-C does (the SIGINT handler in force is called: an
    asyncio loop cancels its task, plain code gets KeyboardInterrupt), so a run stopped by a job
    scheduler or ``kill`` is marked interrupted and keeps its finished work; the yielded object
    says which signal it was. Only in the main thread (elsewhere a signal handler cannot be set)."""
    seen = _Interruption()
    if threading.current_thread() is not threading.main_thread():
        yield seen
        return

    deferred = threading.Event()  # our own re-sent SIGTERM, not the sender's second one

    def on_sigterm(signum: int, frame: Any) -> None:
        if deferred.is_set():
            deferred.clear()
        elif seen.signal_name == "SIGTERM":  # a second SIGTERM: the first is being handled,
            os._exit(143)  # or was lost; committed work is safe in the store: stop now
        seen.signal_name = "SIGTERM"
        if _importing(frame):  # raised inside an import, an exception can abort the process
            deferred.set()
            again = threading.Timer(0.05, os.kill, (os.getpid(), signal.SIGTERM))
            again.daemon = True  # (torch's C++ import hooks terminate on it): once it is done
            again.start()
            return
        handler = signal.getsignal(signal.SIGINT)
        if callable(handler):  # default_int_handler, or asyncio's while a loop runs
            handler(signal.SIGINT, frame)
        else:  # SIGINT ignored (a background job) or default: interrupt all the same
            raise KeyboardInterrupt

    # a background job (`cmd &`, nohup) starts with SIGINT ignored: then asyncio installs no
    # handler of its own, and a KeyboardInterrupt raised at an arbitrary point (a weakref
    # callback, a finaliser) can be swallowed, leaving a run that ignores SIGTERM. For the block,
    # SIGINT gets Python's default handler, so SIGTERM stops a background run as Ctrl-C would.
    ignored = signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    if ignored:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield seen
    finally:
        signal.signal(signal.SIGTERM, previous)
        if ignored:
            signal.signal(signal.SIGINT, signal.SIG_IGN)


def _importing(frame: Any) -> bool:
    """Whether the signalled thread is executing a module's import."""
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib"):
            return True
        frame = frame.f_back
    return False


def _stopped(line: str, seen: _Interruption) -> typer.Exit:
    """Print ``line`` (one line, never wrapped) and return the exit for ``seen``'s signal."""
    err_console.print(line, soft_wrap=True, highlight=False)
    return typer.Exit(seen.exit_code)


# -- plugins -----------------------------------------------------------------------------------


@app.command("plugins")
def plugins_command(
    name: Annotated[
        str | None,
        typer.Argument(
            help="A component (or plugin) to describe: kind, plugin, version, description and "
            "every option with its type, default and description."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    hooks: Annotated[
        bool,
        typer.Option("--hooks", help="Show each plugin's hooks and the file it was loaded from."),
    ] = False,
) -> None:
    """List installed plugins and their components, with errors for broken ones; describe one
    component with NAME.

    AUTOINTERP_LOAD_PLUGINS=a,b loads only the plugins named (entry-point or distribution
    names); AUTOINTERP_DISABLE_PLUGINS=a,b skips those named."""
    if name is not None:
        _describe_components(name, as_json)
        return
    if hooks:
        _print_hooks(as_json)
        return
    rows = _plugins().rows()
    if as_json:
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    if not rows:
        console.print("No autointerp plugins are installed.")
        return
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    for col in ("name", "kind", "distribution", "version", "status"):
        table.add_column(col, overflow="fold")  # narrow terminals wrap names, never cut them
    for row in rows:
        table.add_row(
            row["name"],
            _kind(row["kind"]),
            row["distribution"],
            row["version"],
            f"[{_STATUS_STYLE[row['status']]}]{row['status']}[/]",
        )
    console.print(table)
    _print_plugin_errors(rows)


_STATUS_STYLE = {"ok": "green", "error": "red", "disabled": "yellow", "incompatible": "red"}


def _kind(kind: str | None) -> str:
    return (kind or "-").replace("_", " ").replace("llm ", "LLM ")


def _print_plugin_errors(rows: list[dict[str, Any]]) -> None:
    errors = {(r["plugin"], r["error"]) for r in rows if r["error"]}
    for plugin, error in sorted(errors):
        err_console.print(Text.assemble((plugin, "bold"), f": {error}"), soft_wrap=True)


def _print_hooks(as_json: bool) -> None:
    rows = _plugins().hook_rows()
    if as_json:
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    for row in rows:  # a block per plugin: paths are long, and must stay whole to copy
        console.print(
            Text.assemble(
                (row["plugin"], "bold"),
                f"  {row['distribution']} {row['version']}  ",
                (row["status"], _STATUS_STYLE[row["status"]]),
            ),
            soft_wrap=True,
        )
        console.print(f"  from: {row['path'] or row['module']}", highlight=False, soft_wrap=True)
        hooks = ", ".join(h.removeprefix("autointerp_") for h in row["hooks"]) or "-"
        console.print(f"  hooks: {hooks}", highlight=False, soft_wrap=True)
    _print_plugin_errors(rows)


def _show(value: Any) -> str:
    """An option's value as it is written in a config file (TOML-like)."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value)


def _describe_components(name: str, as_json: bool) -> None:
    found = [c.describe() for c in _plugins().find(name)]
    if as_json:
        sys.stdout.write(json.dumps(found, indent=2) + "\n")
        return
    for i, comp in enumerate(found):
        if i:
            console.print()
        console.print(
            Text.assemble(
                (f"{_kind(comp['kind'])} '{comp['name']}'", "bold"),
                f"  plugin {comp['plugin']}, {comp['distribution']} {comp['version']}",
            ),
            soft_wrap=True,
        )
        if comp["description"]:
            console.print(comp["description"], highlight=False)
        if not comp["options"]:
            console.print("No options.")
            continue
        table = Table(box=box.SIMPLE_HEAD, pad_edge=False, title_justify="left")
        for col in ("option", "type", "default", "description"):
            table.add_column(col, overflow="fold")
        for opt in comp["options"]:
            bounds = f" ({', '.join(opt['bounds'])})" if opt["bounds"] else ""
            kind = opt["type"] + bounds
            default = "(required)" if opt["required"] else _show(opt["default"])
            modes = opt.get("modes", {})
            if modes:
                default += "".join(f"\n{m}: {_show(v)}" for m, v in modes.items())
            table.add_row(opt["name"], Text(kind), Text(default), Text(opt["description"]))
        console.print(table)


# -- install -----------------------------------------------------------------------------------

_PASS_THROUGH = {"allow_extra_args": True, "ignore_unknown_options": True}


def pip_command(action: str, args: list[str]) -> list[str]:
    """The pip command that (un)installs into the environment autointerp runs in (under pipx,
    its own venv): ``python -m pip ACTION ARGS``, with this interpreter."""
    return [sys.executable, "-m", "pip", action, *args]


def _pip(action: str, args: list[str]) -> None:
    code = subprocess.run(pip_command(action, args), check=False).returncode
    if code:
        raise typer.Exit(code)


@app.command("install", context_settings=_PASS_THROUGH)
def install_command(
    packages: Annotated[
        list[str] | None, typer.Argument(help="Packages to install: names, paths or URLs.")
    ] = None,
    upgrade: Annotated[
        bool, typer.Option("--upgrade", "-U", help="Upgrade packages to the latest version.")
    ] = False,
    editable: Annotated[
        str | None, typer.Option("--editable", "-e", help="Install a project in editable mode.")
    ] = None,
    force_reinstall: Annotated[
        bool, typer.Option("--force-reinstall", help="Reinstall even if already up to date.")
    ] = False,
    no_cache_dir: Annotated[
        bool, typer.Option("--no-cache-dir", help="Do not use pip's cache.")
    ] = False,
    pre: Annotated[bool, typer.Option("--pre", help="Include pre-release versions.")] = False,
) -> None:
    """Install packages (plugins) from PyPI, a path or a URL into the environment autointerp
    runs in: `python -m pip install` with its interpreter. Other pip options pass through."""
    args = list(packages or [])
    if not args and editable is None:
        raise ConfigError("install: name a package (or a path, or -e PATH)")
    flags = {"--upgrade": upgrade, "--force-reinstall": force_reinstall}
    flags |= {"--no-cache-dir": no_cache_dir, "--pre": pre}
    args = [f for f, on in flags.items() if on] + (["-e", editable] if editable else []) + args
    _pip("install", args)


@app.command("uninstall", context_settings=_PASS_THROUGH)
def uninstall_command(
    packages: Annotated[list[str], typer.Argument(help="Distributions to uninstall.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Uninstall packages (plugins) from the environment autointerp runs in: `python -m pip
    uninstall` with its interpreter. Other pip options pass through."""
    _pip("uninstall", (["-y"] if yes else []) + list(packages))


# -- new-plugin --------------------------------------------------------------------------------


@app.command("new-plugin")
def new_plugin_command(
    kind: Annotated[
        str,
        typer.Argument(
            help="scorer, explainer, feature-source, model-adapter, llm-client or executor."
        ),
    ],
    name: Annotated[
        str, typer.Argument(help="The component's name: lowercase letters, digits, dashes.")
    ],
    directory: Annotated[
        Path | None, typer.Option("--dir", help="Where to write it (default: ./autointerp-NAME).")
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Write into a non-empty directory, overwriting.")
    ] = False,
) -> None:
    """Write a ready plugin package for one component kind: pyproject with its entry point, the
    component and its config, tests using the autointerp.testing fixtures, a README."""
    from autointerp.scaffold import new_plugin

    plan = new_plugin(kind, name, directory, force=force)
    for path in plan.files:
        console.print(f"  {path}", highlight=False, soft_wrap=True)
    console.print(
        f"wrote {plan.root}: install it with `autointerp install -e {plan.root}`, "
        f"test it with `python -m pytest {plan.root}`",
        highlight=False,
        soft_wrap=True,
    )


# -- config ------------------------------------------------------------------------------------

ConfigFile = Annotated[
    Path | None, typer.Argument(help="Run config (TOML); omit for the embedded defaults.")
]
SetOption = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        "-s",
        metavar="FIELD=VALUE",
        help="Override a field, e.g. explainer.temperature=0.3.",
    ),
]


@config_app.command("show")
def config_show(
    file: ConfigFile = None,
    set_: SetOption = None,
    full: Annotated[
        bool,
        typer.Option(
            "--full",
            help="Also print every option of the selected components with its value or default "
            "(options without a value are left out: TOML has no null).",
        ),
    ] = False,
) -> None:
    """Print the merged config (defaults, FILE and overrides) as TOML."""
    from autointerp.config import dump_toml, load_config

    config = load_config(file, set_ or [])
    table = config.as_table()
    if full:
        _fill_defaults(table, config, str(file) if file else "defaults")
    sys.stdout.write(dump_toml(table))


def _fill_defaults(table: dict[str, Any], config: Any, source: str) -> None:
    """Put every option of each selected component (its mode preset applied) into ``table``."""
    plugins = _plugins()
    problems = plugins.selection_problems(config.selections(), source, config.mode)
    if problems:
        raise ConfigError("\n".join(problems))
    for where, kind, selection in config.selections():
        options = plugins.get(kind, selection.name).validate(
            selection.options, where=f"{source}: {where}", mode=config.mode
        )
        values = {k: v for k, v in options.model_dump(mode="json").items() if v is not None}
        full = {"name": selection.name, **values}
        if where.startswith("scorers["):
            table["scorers"][int(where[len("scorers[") : -1])] = full
        else:
            table[where] = full


@config_app.command("validate")
def config_validate(file: ConfigFile = None, set_: SetOption = None) -> None:
    """Check FILE: syntax, fields, and each selected component's options against its plugin;
    every problem is reported, one line each."""
    _, plan = _load_and_plan(file, set_ or [])
    console.print(f"[green]ok[/]: {file or 'defaults'} selects {len(plan.steps)} components.")


#: the flag that selects the component of each of the config's selection fields
_SELECTION_FLAGS = {
    "model": "--model",
    "feature_source": "--source",
    "explainer": "--explainer",
    "llm": "--llm",
    "scorers": "--scorer",
}


def _load_and_plan(
    file: Path | None, overrides: list[str], selections: Mapping[str, Any] | None = None
) -> tuple[Any, Any]:
    """Load, validate and plan a run config, reporting every problem at once (one line each):
    the config's own fields and, even when those are wrong, each well-formed selection's
    component and options. A component named by a flag (``--scorer overlpa``) is blamed on the
    flag, not on the file."""
    from typing import get_args

    from autointerp.config import RunConfig, check_config, load_data, raw_selections
    from autointerp.pipeline import plan_run

    source = str(file) if file else "defaults"
    plugins = _plugins()
    data = load_data(file, overrides, selections)
    config, problems = check_config(data, source)
    if config is None:
        modes = get_args(RunConfig.model_fields["mode"].annotation)
        mode = data.get("mode") if data.get("mode") in modes else "parity"
        problems += plugins.selection_problems(raw_selections(data), source, mode)
    if not problems:
        try:
            return config, plan_run(config, plugins, source=source)
        except ConfigError as exc:
            problems = str(exc).splitlines()
    flagged = {}
    for key, value in (selections or {}).items():
        if value and key == "scorers":
            flagged |= {f"scorers[{i}]": "--scorer" for i in range(len(value))}
        elif value:
            flagged[key] = _SELECTION_FLAGS[key]
    for i, line in enumerate(problems):
        for where, flag in flagged.items():
            prefix = f"{source}: {where}.name: "
            if line.startswith(prefix):
                problems[i] = f"{flag}: {where}.name: " + line[len(prefix) :]
    raise ConfigError("\n".join(problems))


# -- run ---------------------------------------------------------------------------------------


RunSelections = dict[str, Any]
ModelFlag = Annotated[str | None, typer.Option(help="Model adapter name.")]
SourceFlag = Annotated[str | None, typer.Option("--source", help="Feature source name.")]
ExplainerFlag = Annotated[str | None, typer.Option(help="Explainer name.")]
LLMFlag = Annotated[str | None, typer.Option(help="LLM client name.")]
ScorerFlag = Annotated[
    list[str] | None, typer.Option("--scorer", help="Scorer name (repeat for several).")
]
RunDirFlag = Annotated[Path | None, typer.Option(help="Run directory (default runs/<name>).")]
Target = Annotated[
    Path | None,
    typer.Argument(
        help="A run directory (its config.toml) or a run config (TOML); omit for the defaults."
    ),
]


WaitFlag = Annotated[
    bool,
    typer.Option(
        "--wait",
        help="If another autointerp process is working on the run directory, wait for it "
        "instead of stopping.",
    ),
]


NoReportFlag = Annotated[
    bool, typer.Option("--no-report", help="Do not write the HTML report (RUN/report).")
]


def _run_stages(
    target: Path | None,
    set_: list[str] | None,
    selections: RunSelections,
    run_dir: Path | None,
    stages: tuple[str, ...],
    skip: frozenset[str] = frozenset(),
    wait: bool = False,
) -> None:
    """Plan, open (or resume) the run, execute ``stages``, print the summary and enforce the
    failure rate, then call the plugins' ``autointerp_run_finished`` hooks (the report plugin
    writes the HTML report) with the outputs in ``skip`` turned off. Ctrl-C marks the run
    interrupted (exit 130), and so does SIGTERM (exit 143); rerunning resumes it. The run
    directory is locked from before the run writes anything until the hooks are done: another
    process on it stops this one with one line, or with ``wait`` this one waits for it."""
    with _sigterm_as_ctrl_c() as seen:
        try:
            outcome = _plan_and_run(target, set_, selections, run_dir, stages, skip, wait, seen)
        except KeyboardInterrupt:  # before the run started: nothing was written
            raise _stopped(f"{seen.how}: nothing was started", seen) from None
    _print_summary(outcome.run_dir, outcome.run_id, outcome.summary)
    for line in outcome.messages:  # the report's path ...: also when too many failed
        console.print(line, highlight=False, soft_wrap=True)  # paths to copy, never broken
    if outcome.error is not None:
        raise outcome.error


def _plan_and_run(
    target: Path | None,
    set_: list[str] | None,
    selections: RunSelections,
    run_dir: Path | None,
    stages: tuple[str, ...],
    skip: frozenset[str],
    wait: bool,
    seen: _Interruption,
) -> Any:
    """:func:`_run_stages` up to the run's outcome (``pipeline.RunOutcome``)."""
    from autointerp.pipeline import InterruptedBeforeStart, run
    from autointerp.runlock import hold_run_dir

    overrides = list(set_ or [])
    file = target
    if target is not None and target.is_dir():  # a run directory: its recorded config
        file = target / "config.toml"
        if not file.is_file():
            raise ConfigError(f"{target}: no config.toml here; is this a run directory?")
        run_dir = run_dir or target
    if run_dir is not None:
        overrides.append(f'run_dir="{run_dir.as_posix()}"')
    only = {k: v for k, v in selections.items() if v}
    plugins = _plugins()
    config, plan = _load_and_plan(file, overrides, only)  # before the directory is touched

    def waiting(line: str) -> None:
        err_console.print(line, soft_wrap=True, highlight=False)

    with contextlib.ExitStack() as held:
        try:
            held.enter_context(hold_run_dir(plan.run_dir, wait=wait, on_wait=waiting))
        except KeyboardInterrupt:
            raise _stopped(f"stopped waiting for {plan.run_dir}", seen) from None
        if file is not None and file != target:  # the recorded config may have changed meanwhile
            again, again_plan = _load_and_plan(file, overrides, only)
            if again != config:
                config, plan = again, again_plan
        table = Table(title=f"{' + '.join(stages)} '{config.name}'", show_header=True)
        for col in ("stage", "component", "distribution"):
            table.add_column(col)
        for step in plan.steps:
            table.add_row(step.field, step.component.name, step.component.distribution)
        console.print(table)
        try:
            return run(plan, plugins, stages, skip=skip)
        except InterruptedBeforeStart:
            raise _stopped(f"{seen.how}: nothing was started", seen) from None
        except KeyboardInterrupt:
            line = (
                f"{seen.how}: finished work is saved in {plan.run_dir}; rerun the same command "
                "to resume"
            )
            raise _stopped(line, seen) from None


@app.command("run")
def run_command(
    file: ConfigFile = None,
    set_: SetOption = None,
    model: ModelFlag = None,
    source: SourceFlag = None,
    explainer: ExplainerFlag = None,
    llm: LLMFlag = None,
    scorer: ScorerFlag = None,
    run_dir: RunDirFlag = None,
    no_report: NoReportFlag = False,
    wait: WaitFlag = False,
) -> None:
    """Run the pipeline: cache activations, build examples, explain latents, score explanations.

    Rerun the same command to resume: finished work is skipped, failures are retried. Exits 1
    when a stage's share of failed latents exceeds max_failure_rate."""
    selections = {
        "model": model,
        "feature_source": source,
        "explainer": explainer,
        "llm": llm,
        "scorers": scorer or None,
    }
    skip = frozenset({"report"}) if no_report else frozenset()
    _run_stages(file, set_, selections, run_dir, ("cache", "explain", "score"), skip, wait)


@app.command("explain")
def explain_command(
    target: Target = None,
    set_: SetOption = None,
    model: ModelFlag = None,
    source: SourceFlag = None,
    explainer: ExplainerFlag = None,
    llm: LLMFlag = None,
    run_dir: RunDirFlag = None,
    no_report: NoReportFlag = False,
    wait: WaitFlag = False,
) -> None:
    """Cache (or reuse the run's cache), build examples and explain latents; no scoring.

    Resumable like run; `autointerp score` then scores the explanations."""
    selections = {"model": model, "feature_source": source, "explainer": explainer, "llm": llm}
    skip = frozenset({"report"}) if no_report else frozenset()
    _run_stages(target, set_, selections, run_dir, ("cache", "explain"), skip, wait)


@app.command("score")
def score_command(
    target: Target = None,
    set_: SetOption = None,
    scorer: ScorerFlag = None,
    llm: LLMFlag = None,
    run_dir: RunDirFlag = None,
    no_report: NoReportFlag = False,
    wait: WaitFlag = False,
) -> None:
    """Score a run's stored explanations with its scorers (or --scorer ...); resumable.

    Scores made with the same scorer options are skipped; other scorers are added to the run."""
    selections = {"llm": llm, "scorers": scorer or None}
    skip = frozenset({"report"}) if no_report else frozenset()
    _run_stages(target, set_, selections, run_dir, ("score",), skip, wait)


#: latents shown in the table a run ends with (the report and export hold them all)
SUMMARY_ROWS = 50


def _print_summary(run_path: Path, run_id: int, summary: Any) -> None:
    from autointerp.store import Store

    shown = list(islice(summary.latents, SUMMARY_ROWS))
    with Store.open(run_path) as store:  # the shown latents' records only: runs of any size
        explanations = {ref: es[-1] for ref, es in store.latent_explanations(run_id, shown).items()}
        scores: dict[Any, dict[str, Any]] = {}
        for latent, found in store.latent_scores(run_id, shown).items():
            for score in found:
                scores.setdefault(latent, {})[score.scorer] = score.value
        failures = store.failures(run_id)
        usage = store.usage(run_id)
    scorers = list(summary.scores)
    table = Table(box=box.SIMPLE_HEAD, title=f"{run_path}: {len(summary.latents)} latents")
    for col in ("latent", "explanation", *scorers):
        table.add_column(col, overflow="fold")
    for ref in shown:
        e = explanations.get(ref)
        text = Text(e.text) if e else Text("failed", style="red")
        cells = [scores.get(ref, {}).get(name) for name in scorers]
        table.add_row(str(ref.index), text, *("-" if v is None else f"{v:.2f}" for v in cells))
    console.print(table)
    if len(summary.latents) > SUMMARY_ROWS:
        more = len(summary.latents) - SUMMARY_ROWS
        console.print(f"... and {more} more latents (all in the report and the export)")
    console.print(
        f"LLM: {usage.calls} calls paid, {usage.cache_hits} from the cache, "
        f"{usage.prompt_tokens + usage.completion_tokens:,} tokens, ${usage.cost_usd:.4f}",
        highlight=False,
    )
    if failures:
        err_console.print(f"{len(failures)} failures recorded; see `autointerp status {run_path}`")
    console.print(
        f"results: {run_path / 'results.sqlite'}; export with `autointerp export {run_path}`",
        highlight=False,
    )


@app.command("sites")
def sites_command(
    model: Annotated[str, typer.Argument(help="Model spec: packaged name, hub name or path.")],
    adapter: Annotated[str, typer.Option(help="Model adapter name.")] = "transformers",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List a model's sites (capture / intervention points) with shapes and module paths."""
    built = _plugins().build("model_adapter", adapter, {"model": model})
    info = built.describe()
    if as_json:
        sys.stdout.write(json.dumps(info, indent=2) + "\n")
        return
    table = Table(
        title=f"{model}: {info['architecture']}, {info['n_layers']} layers, "
        f"d_model {info['d_model']} ({info['adapter']}/{info['backend']})"
    )
    for col in ("site", "shape", "module"):
        table.add_column(col)
    for site in info["sites"]:
        table.add_row(site["name"], str(tuple(site["shape"])), site["module_path"])
    console.print(table)


@app.command("cache")
def cache_command(
    corpus: Annotated[str, typer.Argument(help="txt/jsonl/parquet file or folder, or hf:NAME")],
    out: Annotated[Path, typer.Option("--out", help="Run directory (cache goes in OUT/cache).")],
    source: Annotated[str, typer.Option(help="Feature source name.")] = "sae",
    source_option: Annotated[
        list[str] | None,
        typer.Option("--source-option", "-s", metavar="KEY=VALUE", help="Feature source option."),
    ] = None,
    adapter: AdapterOpt = "transformers",
    model: ModelOpt = None,
    option: OptionOpt = None,
    threads: ThreadsOpt = None,
    ctx_len: Annotated[int, typer.Option(help="Tokens per context.")] = 64,
    batch_size: Annotated[int, typer.Option(help="Contexts per forward pass.")] = 8,
    max_tokens: Annotated[int, typer.Option(help="Stop after this many tokens.")] = 100_000,
    bos: Annotated[bool, typer.Option(help="Start every context with BOS.")] = False,
    text_field: Annotated[str, typer.Option(help="jsonl/parquet/dataset text field.")] = "text",
) -> None:
    """Cache a feature source's activations on a corpus (resumable; see autointerp.cache).

    OUT is locked while it caches, like a run directory during `autointerp run`. Ctrl-C (exit
    130) or SIGTERM (exit 143) keeps the complete shards; rerunning continues after them."""
    with _sigterm_as_ctrl_c() as seen:
        try:
            _cache(corpus, out, source, source_option, adapter, model, option, threads, ctx_len,
                   batch_size, max_tokens, bos, text_field)  # fmt: skip
        except KeyboardInterrupt:
            line = (
                f"{seen.how}: complete shards are kept in {out}; rerun the same command to resume"
            )
            raise _stopped(line, seen) from None


def _cache(
    corpus: str, out: Path, source: str, source_option: list[str] | None, adapter: str,
    model: str | None, option: list[str] | None, threads: int | None, ctx_len: int,
    batch_size: int, max_tokens: int, bos: bool, text_field: str,
) -> None:  # fmt: skip
    """:func:`cache_command`'s work."""
    from autointerp.adapter_cli import load_adapter, parse_options
    from autointerp.config import CorpusSettings
    from autointerp.pipeline import cache_corpus
    from autointerp.runlock import hold_run_dir

    with hold_run_dir(out):
        built = load_adapter(adapter, model, option, threads)
        src_opts = parse_options(source_option, "--source-option")
        features = _plugins().build("feature_source", source, src_opts)
        settings = CorpusSettings(
            path=corpus, text_field=text_field, ctx_len=ctx_len, batch_size=batch_size,
            n_tokens=max_tokens, bos=bos,
        )  # fmt: skip
        info = {
            "adapter": adapter, "model": model, "adapter_options": parse_options(option),
            "source": source, "source_options": src_opts, "corpus": corpus, "ctx_len": ctx_len,
            "batch_size": batch_size, "max_tokens": max_tokens, "bos": bos,
        }  # fmt: skip
        cache_dir = out / "cache" / features.site
        cache = cache_corpus(built, features, settings, cache_dir, info)
        stats = cache.stats()
        dead = int((stats["count"] == 0).sum())
        console.print(
            f"cached {cache.manifest['n_tokens']} tokens of {features.site} in {len(cache.shards)} "
            f"shards at {cache_dir}; {cache.n_latents} latents, {dead} never fired",
            highlight=False,
        )


@app.command("status")
def status_command(
    run_dir: Annotated[Path, typer.Argument(help="The run directory.")],
    run_id: Annotated[
        int | None,
        typer.Option(
            "--run-id", help="Which run of the store (default: the latest that did work)."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    failures: Annotated[
        bool, typer.Option("--failures", help="List every failed latent with its reason.")
    ] = False,
) -> None:
    """Done, failed and pending latents per stage of a run (the latest run in its store that did
    work, or --run-id), the LLM calls, tokens and dollars each component paid for, and the
    failed latents with their reasons. Reads the run without changing it."""
    from autointerp.status import run_failures, run_header, run_status

    rows = run_failures(run_dir, run_id) if failures else run_status(run_dir, run_id)
    if as_json:
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    if failures:
        _print_failures(run_dir, rows, limit=None, run_id=run_id)
        return
    # the header on a line of its own, never wrapped (a table title wraps at the table's width)
    console.print(f"{run_dir}: {run_header(run_dir, run_id)}", highlight=False, soft_wrap=True)
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    widest = max((len(row["component"]) for row in rows), default=0)
    for col in ("stage", "component", "done", "failed", "pending", "calls", "tokens", "cost"):
        left = col in ("stage", "component")
        width = {"component": widest, "cost": 7}.get(col, len(col))
        table.add_column(col, justify="left" if left else "right", no_wrap=True, min_width=width)
    for row in rows:
        counts = ["-" if row[k] is None else str(row[k]) for k in ("done", "failed", "pending")]
        calls = str(row["calls"]) + (f" (+{row['cache_hits']} cached)" if row["cache_hits"] else "")
        tokens = f"{row['prompt_tokens'] + row['completion_tokens']:,}"
        table.add_row(
            row["stage"] or "-", row["component"] or "(not recorded)", *counts, calls, tokens,
            _dollars(row["cost_usd"]),
        )  # fmt: skip
    console.print(table)
    if any(row["failed"] for row in rows):
        _print_failures(run_dir, run_failures(run_dir, run_id), limit=10, run_id=run_id)


def _dollars(cost: float) -> str:
    """A cost in a status table: cents from a dollar on, else four decimals."""
    return "$0" if cost == 0 else f"${cost:,.2f}" if cost >= 1 else f"${cost:.4f}"


def _print_failures(
    run_dir: Path, rows: list[dict[str, Any]], limit: int | None, run_id: int | None = None
) -> None:
    table = Table(box=box.SIMPLE_HEAD, title="failures")
    for col in ("stage", "component", "latent", "reason"):
        table.add_column(col, overflow="fold")
    for row in rows[:limit]:
        table.add_row(row["stage"], row["component"], str(row["latent"]), Text(row["reason"]))
    console.print(table)
    if limit is not None and len(rows) > limit:
        console.print(
            f"{len(rows) - limit} more: `autointerp status {run_dir} --failures"
            + ("" if run_id is None else f" --run-id {run_id}")
            + "`",
            highlight=False,
        )


# -- entry point -------------------------------------------------------------------------------


#: the app's own commands and groups, before any plugin added its own
_core_commands: tuple[list[Any], list[Any]] | None = None


def build_cli() -> Any:
    """The click command for the app, with every plugin's sub-commands added (once per call:
    those of earlier calls are dropped first, so in-process calls don't pile them up)."""
    global _core_commands
    if _core_commands is None:
        _core_commands = (list(app.registered_commands), list(app.registered_groups))
    app.registered_commands[:] = _core_commands[0]
    app.registered_groups[:] = _core_commands[1]
    try:
        _plugins().add_commands(app)
    except Exception as exc:  # never let plugin trouble stop --version or plugins
        err_console.print(Text.assemble(("error", "red"), f": loading plugins failed: {exc}"))
    command = typer.main.get_command(app)
    _suggest_choices(command)
    _readable_help(command)
    return command


#: typer's type labels -> the words help text shows (a flag shows none)
_TYPE_WORDS = {"str": "TEXT", "path": "PATH", "int": "INTEGER", "float": "NUMBER", "bool": None}


def _type_word(label: str | None) -> str | None:
    if not label or not (label.startswith("<") and label.endswith(">")):
        return label  # a metavar the command chose (FIELD=VALUE) stays
    inner = label[1:-1]
    while inner.startswith("list[") and inner.endswith("]"):  # a repeatable option
        inner = inner[5:-1]
    if "|" in inner:  # choices
        return f"[{inner}]"
    return _TYPE_WORDS.get(inner.lower(), inner.upper())


def _reflow(text: str) -> str:
    """Docstring paragraphs as single lines (the terminal wraps them), lists and indented
    blocks kept as written."""
    paragraphs = []
    for block in text.split("\n\n"):
        lines = block.strip("\n").splitlines()
        if any(line.startswith(("  ", "- ", "* ")) for line in lines):
            paragraphs.append("\n".join(lines))
        else:
            paragraphs.append(" ".join(line.strip() for line in lines))
    return "\n\n".join(paragraphs)


def _readable_help(command: Any) -> None:
    """Help that reads at 80 columns: docstring paragraphs reflowed instead of broken where the
    source broke them, and type words (TEXT, PATH, INTEGER; none for a flag) instead of
    ``<str>``, ``<list[str]>`` or ``<bool>``."""
    if getattr(command, "help", None):
        command.help = _reflow(command.help)
    for param in getattr(command, "params", ()):
        shown = getattr(param, "display_type_rich", None)
        if shown is None or "display_type_rich" in vars(param):
            continue
        flag = getattr(param, "is_flag", False)
        param.display_type_rich = (
            (lambda ctx: None) if flag else (lambda ctx, shown=shown: _type_word(shown(ctx)))
        )
    if hasattr(command, "get_help_option") and "get_help_option" not in vars(command):
        make_help = command.get_help_option

        def get_help_option(ctx: Any, make_help: Any = make_help) -> Any:
            option = make_help(ctx)  # made per context: its type word goes here
            if option is not None:
                option.display_type_rich = lambda ctx: None
            return option

        command.get_help_option = get_help_option
    for sub in getattr(command, "commands", {}).values():
        _readable_help(sub)


def _suggest_choices(command: Any) -> None:
    """Make every choice-valued option and argument (a Literal or Enum type, in any plugin's
    command too) suggest the closest choice for a misspelt value."""
    for param in getattr(command, "params", ()):
        desc = getattr(param, "type_descriptor", None)
        choices = getattr(desc, "choices", None)
        if choices and "process_value" not in vars(param):
            param.process_value = _suggesting(param.process_value, choices)
    for sub in getattr(command, "commands", {}).values():
        _suggest_choices(sub)


def _suggesting(process_value: Any, choices: tuple[Any, ...]) -> Any:
    names = [str(getattr(c, "value", c)) for c in choices]

    def process(ctx: Any, value: Any) -> Any:
        try:
            return process_value(ctx, value)
        except typer.BadParameter as exc:
            values = value if isinstance(value, list | tuple) else [value]
            for item in values:
                close = difflib.get_close_matches(str(item), names, n=1, cutoff=0.5)
                if str(item) not in names and close:
                    exc.message = f"{exc.message} Did you mean '{close[0]}'?"
                    break
            raise

    return process


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point: one-line errors, tracebacks only with ``--debug``."""
    args = sys.argv[1:] if argv is None else argv
    # our own progress display is the only one: the hub's and transformers' tqdm bars (weights
    # loading, shards) would interleave with it (set the variable to 0 to see them)
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    # and the hub's retry warnings would come before our one-line error, not instead of it
    os.environ.setdefault("HF_HUB_VERBOSITY", "error")
    try:
        # standalone mode: click reports its own usage errors and exits through SystemExit
        build_cli().main(args=args, prog_name="autointerp", standalone_mode=True)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except AutointerpError as exc:
        if "--debug" in args:
            raise
        full = None if "the disk is full" in str(exc) else disk_full(exc)  # said once
        lines = [disk_full_message(full)] if full else str(exc).splitlines()
        for line in lines or [type(exc).__name__]:
            err_console.print(Text.assemble(("error", "red"), f": {line}"), soft_wrap=True)
        return 1
    except Exception as exc:  # a full disk is the user's to fix: one line, not a traceback
        full = disk_full(exc)
        if full is None or "--debug" in args:
            raise
        line = disk_full_message(full)
        err_console.print(Text.assemble(("error", "red"), f": {line}"), soft_wrap=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
