"""The documentation site (docs/, mkdocs.yml) builds without a warning, its generated reference
pages match the code, and its code blocks work as written.

In every page but the generated ones (docs/reference) and those another test runs
(``RUN_ELSEWHERE``), in page order, in a fresh directory:

- each ```python block runs (one namespace per page), unless an HTML comment
  ``<!-- skip: reason -->`` stands right before it;
- each cheap ``autointerp`` command of a ```bash block runs in process and must exit 0 (``plugins``,
  ``config show``, ``new-plugin``, ``--version``, anything with ``--help``; commands that load a
  model or call an LLM are left to the tests of what they do), unless the block is skipped the
  same way; a package ``new-plugin`` wrote is importable afterwards, as after ``pip install -e``;
- a ```toml block preceded by ``<!-- file: NAME -->`` is written to NAME first.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from autointerp import cli as autointerp_cli

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
#: pages whose blocks another test runs, against what they need (a scripted LLM server, a run)
RUN_ELSEWHERE = {"python-api.md": "tests/test_api.py"}
#: `autointerp` commands cheap enough to run from every page (the first words after the program)
CHEAP = (("plugins",), ("config", "show"), ("new-plugin",), ("--version",))
SHELL = {"bash", "sh", "console", "shell"}

_FENCE = re.compile(r"^(`{3,})([\w-]*)[^\n`]*$")
_MARK = re.compile(r"^<!--\s*(skip|setup|file):\s*(.*?)\s*-->$")


@dataclass(frozen=True)
class Block:
    page: str
    line: int  #: 1-based line of the opening fence
    lang: str
    code: str
    mark: str | None = None  #: "skip", "setup" or "file"
    note: str = ""  #: the marker's text: the reason, the setup, the file name

    @property
    def where(self) -> str:
        return f"docs/{self.page}:{self.line}"


def blocks(text: str, page: str) -> list[Block]:
    """The fenced blocks of a Markdown page, each with the marker comment right before it."""
    lines = text.splitlines()
    out: list[Block] = []
    i = 0
    while i < len(lines):
        match = _FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        fence, lang, start = match.group(1), match.group(2), i
        body = []
        i += 1
        while i < len(lines) and lines[i].rstrip() != fence:
            body.append(lines[i])
            i += 1
        prev = next((lines[j].strip() for j in range(start - 1, -1, -1) if lines[j].strip()), "")
        mark = _MARK.match(prev)
        out.append(
            Block(
                page, start + 1, lang, "\n".join(body) + "\n",
                mark.group(1) if mark else None, mark.group(2) if mark else "",
            )
        )  # fmt: skip
        i += 1
    return out


def commands(code: str) -> Iterator[list[str]]:
    """The cheap ``autointerp`` command lines of a shell block, as argument lists."""
    for line in code.replace("\\\n", " ").splitlines():
        line = line.strip().removeprefix("$ ")
        if not line.startswith("autointerp ") or re.search(r"[|<>;&`$(]", line.split("#")[0]):
            continue
        argv = shlex.split(line, comments=True)[1:]
        if "--help" in argv or any(tuple(argv[: len(c)]) == c for c in CHEAP):
            yield argv


def pages() -> list[str]:
    return sorted(
        p.relative_to(DOCS).as_posix()
        for p in DOCS.rglob("*.md")
        if "reference" not in p.relative_to(DOCS).parts
    )


def run_page(page: str, text: str, sandbox: Path, monkeypatch: pytest.MonkeyPatch) -> int:
    """Run a page's blocks in ``sandbox``; the number of blocks run. Fails naming the block."""
    monkeypatch.chdir(sandbox)
    namespace: dict[str, object] = {"__name__": "__docs__"}
    added: list[str] = []
    ran = 0
    try:
        for block in blocks(text, page):
            if block.mark == "skip":
                assert block.note, f"{block.where}: a skip marker needs a reason"
                continue
            if block.mark == "file":
                (sandbox / block.note).write_text(block.code, encoding="utf-8")
            elif block.lang == "python":
                try:
                    exec(compile(block.code, block.where, "exec"), namespace)
                except Exception as exc:
                    failed = f"{block.where}: the python block failed: {exc!r}"
                    raise AssertionError(failed) from exc
                ran += 1
            elif block.lang in SHELL:
                for argv in commands(block.code):
                    code = autointerp_cli.main(argv)
                    assert code == 0, f"{block.where}: `autointerp {shlex.join(argv)}` exit {code}"
                    ran += 1
                for src in sorted(sandbox.glob("autointerp-*/src")):  # as after pip install -e
                    if str(src) not in sys.path:
                        monkeypatch.syspath_prepend(str(src))
                        added += [p.name for p in src.iterdir() if p.is_dir()]
    finally:
        for name in [m for m in sys.modules if m.split(".")[0] in added]:
            del sys.modules[name]
    return ran


# -- the site --------------------------------------------------------------------------------------


def test_the_site_builds_without_a_warning(tmp_path: Path) -> None:
    """Strict: a broken link or anchor, or a page missing from the nav, fails the build."""
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(tmp_path / "site")],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "site" / "reference" / "config" / "index.html").is_file()
    assert (tmp_path / "site" / "tutorials" / "scorer" / "index.html").is_file()


def test_the_generated_reference_pages_match_the_code() -> None:
    """docs/reference is what docs/gen_ref.py makes from the code now (else: regenerate)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOINTERP_")}
    done = subprocess.run(
        [sys.executable, str(DOCS / "gen_ref.py"), "--check"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


def test_the_reference_pages_cover_every_component_command_and_hook(
    autointerp_plugins: object,
) -> None:
    from autointerp import hookspecs
    from autointerp.cli import build_cli
    from autointerp.plugins import PluginManager

    config = (DOCS / "reference" / "config.md").read_text(encoding="utf-8")
    cli = (DOCS / "reference" / "cli.md").read_text(encoding="utf-8")
    hooks = (DOCS / "reference" / "hooks.md").read_text(encoding="utf-8")
    for comp in PluginManager(disabled=()).components():
        if comp.distribution in REPO_DISTRIBUTIONS:  # not the tutorial's, nor a test's
            assert f"### `{comp.name}`" in config, comp.name
            for option in comp.config.model_fields:
                assert f"**`{option}`**" in config, (comp.name, option)
    ours = {"autointerp", *(d.replace("-", "_") for d in REPO_DISTRIBUTIONS)}
    root = build_cli()
    for name, command in root.commands.items():
        if origin(command) not in ours:  # a test's throwaway plugin, a third-party one
            continue
        assert f"## autointerp {name} " in cli, name
        for param in command.params:
            for opt in param.opts if param.param_type_name == "option" else ():
                assert opt in cli, (name, opt)
    for name in dir(hookspecs):
        if name.startswith("autointerp_"):
            assert f"## {name}\n" in hooks


def origin(command: object) -> str:
    """The top-level package whose function a command (or a group's first command) runs."""
    callback = getattr(command, "callback", None)
    subs = list(getattr(command, "commands", {}).values())
    if callback is None or callback.__module__.startswith("typer"):
        return origin(subs[0]) if subs else ""
    return str(callback.__module__).split(".")[0]


REPO_DISTRIBUTIONS = [
    tomllib.loads(p.read_text(encoding="utf-8"))["project"]["name"]
    for p in [ROOT / "core" / "pyproject.toml", *ROOT.glob("plugins/*/pyproject.toml")]
]


# -- the code blocks -------------------------------------------------------------------------------


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, autointerp_plugins: object) -> None:
    """``autointerp.cli.main`` as the console script runs it, its command tree built once: each
    build adds the plugins' commands again, which a page's many commands need not pay for."""
    global _COMMAND
    if _COMMAND is None:
        _COMMAND = autointerp_cli.build_cli()
    monkeypatch.setattr(autointerp_cli, "build_cli", lambda: _COMMAND)


_COMMAND = None


@pytest.mark.parametrize("page", [p for p in pages() if p not in RUN_ELSEWHERE])
def test_the_code_blocks_of_each_page_work(
    page: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli: None
) -> None:
    text = (DOCS / page).read_text(encoding="utf-8")
    ran = run_page(page, text, tmp_path, monkeypatch)
    if page.startswith("tutorials/"):  # each generates its package, then uses it from Python
        assert ran >= 2 and list(tmp_path.glob("autointerp-*/src/autointerp_*/plugin.py")), page


def test_pages_run_elsewhere_are_run_there() -> None:
    for page, test in RUN_ELSEWHERE.items():
        assert f'"{page}"' in (ROOT / test).read_text(encoding="utf-8"), (page, test)


def test_a_failing_block_or_a_bare_skip_fails_naming_the_block(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli: None
) -> None:
    page = "# t\n\n```python\nx = 1\n```\n\n<!-- skip: needs a GPU -->\n```python\nraise X\n```\n"
    assert run_page("t.md", page, tmp_path, monkeypatch) == 1
    with pytest.raises(AssertionError, match=r"docs/t\.md:3: the python block failed"):
        run_page("t.md", "# t\n\n```python\n1 / 0\n```\n", tmp_path, monkeypatch)
    with pytest.raises(AssertionError, match=r"docs/t\.md:4: a skip marker needs a reason"):
        run_page("t.md", "# t\n\n<!-- skip: -->\n```python\n1 / 0\n```\n", tmp_path, monkeypatch)
    with pytest.raises(AssertionError, match=r"autointerp plugins no-such-thing` exit 1"):
        run_page("t.md", "```bash\nautointerp plugins no-such-thing\n```\n", tmp_path, monkeypatch)
    shell = "```bash\npip install x\nautointerp run my.toml\nautointerp plugins | head\n```\n"
    assert run_page("t.md", shell, tmp_path, monkeypatch) == 0  # not cheap, or piped: not run
