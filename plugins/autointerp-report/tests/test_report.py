"""The HTML report: written from a real store, opened in a real headless Chromium, offline."""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import time
import urllib.request
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from autointerp_report.render import ReportSettings, write_report

from autointerp.cli import main
from autointerp.errors import AutointerpError
from autointerp.store import Store
from autointerp.testing.adapters import save_tiny, tiny_model
from autointerp.testing.runs import scripted_answers, write_run_config
from autointerp.types import Example, Explanation, LatentRef, Prediction, Score

SOURCE = "sae/resid_post.6"
WORDS = ["The", " cat", " sat", " on", " the", " mat", ".", "\n", " def", " foo", "(", "):"]


def fill_run(run_dir: Path, n_latents: int = 6, *, n_examples: int = 3) -> Store:
    """A finished run through the Store API: stats, examples (negatives too), explanations,
    two scorers with per-example predictions, an output-side latent and a failed latent."""
    store = Store.open(run_dir)
    run = store.start_run("demo", {"seed": 0})
    store.put_latents(
        run, SOURCE,
        [{"index": i, "frequency": 10 ** -(1 + i % 4), "max_activation": 2.0 + i, "mean": 0.5}
         for i in range(n_latents)],
    )  # fmt: skip
    for i in range(n_latents):
        ref = LatentRef(SOURCE, i)
        examples = []
        for kind in ["top"] * n_examples + [f"quantile:{q}" for q in range(n_examples)]:
            acts = [0.0] * len(WORDS)
            acts[(i + len(examples)) % len(WORDS)] = 2.0 + i  # one peak per example
            acts[(i + len(examples) + 1) % len(WORDS)] = (2.0 + i) / 4
            examples.append(Example(tuple(range(len(WORDS))), tuple(WORDS), tuple(acts), kind))
        examples += [
            Example(tuple(range(len(WORDS))), tuple(WORDS), (0.0,) * len(WORDS), "random")
            for _ in range(n_examples)
        ]
        store.put_examples(run, ref, examples)
        if i == 1:
            store.put_failure(run, ref, "explain", "default", "answer could not be parsed")
            continue
        meta = {"promoted": [" cat", " dog"]} if i == 2 else {}
        store.put_explanation(run, Explanation(ref, f"the word number {i} <b>", "default", meta))
        n_scored = 2 * n_examples
        for scorer, shift in (("detection", 0.0), ("fuzzing", 0.1)):
            preds = tuple(
                Prediction(j, float(j < n_examples) if j != i else None, float(j < n_examples))
                for j in range(n_scored)
            )
            value = 0.5 + 0.4 * (i % 3) / 2 + shift * (i % 2)
            store.put_score(
                run,
                Score(ref, scorer, "default", value, {"accuracy": value}, preds,
                      sum(p.predicted is None for p in preds)),
            )  # fmt: skip
    store.finish_run(run)
    return store


# -- data and plots, without a browser ----------------------------------------------------------


def test_report_files_plots_and_chunks(tmp_path: Path) -> None:
    fill_run(tmp_path / "run", 7).close()
    settings = ReportSettings(rows_per_file=3, cards_per_file=2)
    index = write_report(tmp_path / "run", settings=settings)
    out = index.parent
    assert index == tmp_path / "run" / "report" / "index.html"
    assert sorted(p.name for p in (out / "data").glob("rows-*.js")) == [
        "rows-0001.js",
        "rows-0002.js",
        "rows-0003.js",
    ]
    assert len(list((out / "data").glob("latents-*.js"))) == 4
    html = index.read_text()
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "https://" not in html and "<b>" not in html  # no CDN; explanations never as markup

    plots = sorted((out / "plots").glob("*.svg"))
    names = {p.name for p in plots}
    assert names == {
        "hist-detection.svg", "hist-fuzzing.svg", "freq-detection.svg", "freq-fuzzing.svg",
        "pair-detection-vs-fuzzing.svg",
    }  # fmt: skip
    for p in plots:
        assert p.stat().st_size > 1500, p
        root = ET.parse(p).getroot()
        assert root.tag == "{http://www.w3.org/2000/svg}svg"
        assert root.find("{http://www.w3.org/2000/svg}title") is not None
    ns = {"s": "http://www.w3.org/2000/svg"}
    hist = ET.parse(out / "plots" / "hist-detection.svg").getroot()
    bars = [r for r in hist.findall("s:rect", ns) if r.find("s:title", ns) is not None]
    assert sum(int(r.find("s:title", ns).text.rsplit(": ", 1)[1]) for r in bars) == 6
    pair = ET.parse(out / "plots" / "pair-detection-vs-fuzzing.svg").getroot()
    assert "Spearman" in pair.find("s:title", ns).text

    # the data files are the scripts the page loads: strip the JSONP call and read them back
    rows: list[list[Any]] = []
    for p in sorted((out / "data").glob("rows-*.js")):
        rows += _jsonp(p)[2]
    assert [r[2] for r in rows] == list(range(7))
    assert rows[1][3] == "" and rows[1][6] == 1  # latent 1: no explanation, one failure
    cards = {}
    for p in sorted((out / "data").glob("latents-*.js")):
        _, n, items, strings = _jsonp(p)
        for c in items:
            cards[c["i"]] = (n, c, strings)
    assert {i: cards[i][0] for i in cards} == {r[2]: r[7] for r in rows}
    n, card, strings = cards[2]
    assert card["e"][0][2] == [" cat", " dog"]  # promoted tokens of the output-side latent
    top = card["ex"]["top"][0]
    assert [strings[t] for t in top["t"]] == WORDS
    assert max(top["a"]) == 1000 and card["am"] == 4.0
    assert len(card["ex"]["neg"]) == 3 and all(max(e["a"]) == 0 for e in card["ex"]["neg"])
    # the prediction for scored example 2 (the latent's own unparsed one) lands on test example 2
    assert card["ex"]["test"][2]["p"] == [[0, None, 1.0, None], [1, None, 1.0, None]]
    assert card["ex"]["neg"][0]["p"][0] == [0, 0.0, 0.0, None]


def _jsonp(path: Path) -> list[Any]:
    text = path.read_text()
    head = "window.AUTOINTERP.push("
    assert text.startswith(head) and text.endswith(");\n")
    return json.loads("[" + text[len(head) : -3] + "]")


def test_report_errors_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(AutointerpError, match=r"has no results\.sqlite; give a run directory"):
        write_report(tmp_path)
    fill_run(tmp_path / "run", 2).close()
    with pytest.raises(AutointerpError, match="no run 9; runs here: 1"):
        write_report(tmp_path / "run", run_id=9)


def test_report_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import webbrowser

    opened: list[str] = []
    monkeypatch.setattr(webbrowser, "open", opened.append)
    fill_run(tmp_path / "run", 3).close()
    assert main(["report", str(tmp_path / "run"), "--out", str(tmp_path / "rep")]) == 0
    assert (tmp_path / "rep" / "index.html").is_file() and opened == []
    assert "rep/index.html" in capsys.readouterr().out
    assert main(["report", str(tmp_path / "run"), "--open"]) == 0
    assert opened == [(tmp_path / "run" / "report" / "index.html").resolve().as_uri()]
    assert main(["report", str(tmp_path / "run"), "--run-id", "4"]) == 1
    assert "no run 4; runs here: 1" in capsys.readouterr().err


def test_large_run_streams_into_small_files(tmp_path: Path) -> None:
    """3,000 latents: index.html stays small, data is split, the scatter is subsampled."""
    store = Store.open(tmp_path / "run")
    run = store.start_run("big", {})
    n = 3000
    store.put_latents(
        run, SOURCE,
        [{"index": i, "frequency": (i + 1) / n, "max_activation": 1.0} for i in range(n)],
    )  # fmt: skip
    for i in range(n):
        ref = LatentRef(SOURCE, i)
        store.put_explanation(run, Explanation(ref, f"latent {i}", "default"))
        store.put_score(run, Score(ref, "detection", "default", (i % 97) / 97))
    store.close()
    index = write_report(tmp_path / "run", settings=ReportSettings(cards_per_file=500))
    assert index.stat().st_size < 60_000
    assert len(list((index.parent / "data").glob("latents-*.js"))) == 6
    svg = (index.parent / "plots" / "freq-detection.svg").read_text()
    assert "(4000 of" not in svg and svg.count("h0") == n  # under the cap: every point drawn


def test_worker_processes_write_the_same_report(tmp_path: Path) -> None:
    """Cards rendered in two spawned workers: byte-identical files to one process."""
    fill_run(tmp_path / "run", 7).close()
    settings = ReportSettings(rows_per_file=3, cards_per_file=2, read_chunk=3)
    one = write_report(tmp_path / "run", tmp_path / "one", settings=replace(settings, workers=1))
    two = write_report(tmp_path / "run", tmp_path / "two", settings=replace(settings, workers=2))
    files = sorted(p.relative_to(one.parent) for p in one.parent.rglob("*.*"))
    assert files == sorted(p.relative_to(two.parent) for p in two.parent.rglob("*.*"))
    assert len([f for f in files if f.name.startswith("latents-")]) == 4
    for f in files:
        if f.suffix == ".js":
            assert (one.parent / f).read_bytes() == (two.parent / f).read_bytes(), f
    meta = _meta(one)
    assert meta["card_files"] == 4 and meta == {**_meta(two), "run": meta["run"]}


def test_workers_start_from_a_script_on_stdin(tmp_path: Path) -> None:
    """A caller's __main__ that spawned workers cannot import (stdin, no main guard) is hidden
    from them: the report is written once, the script does not run again in the workers."""
    fill_run(tmp_path / "run", 5).close()
    script = (
        "from autointerp_report.render import ReportSettings, write_report\n"
        "print('script ran')\n"
        f"write_report({str(tmp_path / 'run')!r}, settings=ReportSettings(cards_per_file=2, "
        "workers=2))\n"
    )
    out = subprocess.run(
        [sys.executable, "-"], input=script, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("script ran") == 1 and "Traceback" not in out.stderr
    assert len(list((tmp_path / "run" / "report" / "data").glob("latents-*.js"))) == 3


def _meta(index: Path) -> dict[str, Any]:
    line = next(x for x in index.read_text().splitlines() if "AUTOINTERP_META =" in x)
    return json.JSONDecoder().raw_decode(line.split("=", 1)[1].strip())[0]


def fill_two_explainers(run_dir: Path) -> None:
    """fill_run plus a "contrastive" explainer on latents 0, 2 and 4, scored by detection."""
    with fill_run(run_dir, 6) as store:
        for i in (0, 2, 4):
            ref = LatentRef(SOURCE, i)
            store.put_explanation(1, Explanation(ref, f"contrast view {i}", "contrastive"))
            store.put_score(1, Score(ref, "detection", "contrastive", 0.1 * i, {}, ()))


def test_several_explainers_get_a_column_each(tmp_path: Path) -> None:
    fill_two_explainers(tmp_path / "run")
    index = write_report(tmp_path / "run")
    meta = _meta(index)
    assert meta["explainers"] == ["contrastive", "default"]
    assert meta["scorers"] == [
        "detection (contrastive)", "detection (default)", "fuzzing (default)",
    ]  # fmt: skip
    rows = _jsonp(index.parent / "data" / "rows-0001.js")[2]
    by_idx = {r[2]: r for r in rows}
    # [.., explanation of the first explainer, .., *3 scores, explanation of the second]
    assert [by_idx[i][3] for i in range(6)] == [
        "contrast view 0", "", "contrast view 2", "", "contrast view 4", "",
    ]  # fmt: skip
    assert [by_idx[i][11] for i in range(6)] == [
        "the word number 0 <b>", "", "the word number 2 <b>", "the word number 3 <b>",
        "the word number 4 <b>", "the word number 5 <b>",
    ]  # fmt: skip
    assert by_idx[4][8:11] == [pytest.approx(0.4), pytest.approx(0.7), pytest.approx(0.7)]
    assert by_idx[3][8] is None  # no contrastive score


# -- the page in a real browser ------------------------------------------------------------------

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


class DevTools:
    """A minimal Chrome DevTools Protocol client over a hand-rolled websocket (RFC 6455)."""

    def __init__(self, url: str) -> None:
        rest = url.removeprefix("ws://")
        hostport, path = rest.split("/", 1)
        host, port = hostport.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=30)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            f"GET /{path} HTTP/1.1\r\nHost: {hostport}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        head = b""
        while b"\r\n\r\n" not in head:
            head += self.sock.recv(1)
        assert b" 101 " in head.split(b"\r\n")[0], head
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    def _read(self, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("DevTools closed the connection")
            buf += chunk
        return buf

    def _send(self, payload: bytes, opcode: int = 1) -> None:
        mask = os.urandom(4)
        n = len(payload)
        head = bytes([0x80 | opcode])
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 1 << 16:
            head += bytes([0x80 | 126]) + struct.pack(">H", n)
        else:
            head += bytes([0x80 | 127]) + struct.pack(">Q", n)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(head + mask + masked)

    def _message(self) -> dict[str, Any]:
        data = b""
        while True:
            b0, b1 = self._read(2)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack(">H", self._read(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self._read(8))[0]
            payload = self._read(n)
            opcode = b0 & 0x0F
            if opcode == 9:  # ping
                self._send(payload, 10)
                continue
            if opcode == 8:
                raise ConnectionError("DevTools closed the connection")
            data += payload
            if b0 & 0x80:
                return json.loads(data)

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        self._send(json.dumps({"id": self.next_id, "method": method, "params": params}).encode())
        while True:
            msg = self._message()
            if msg.get("id") == self.next_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self.events.append(msg)

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        assert "exceptionDetails" not in result, result
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 20.0) -> Any:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            value = self.evaluate(expression)
            if value:
                return value
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {expression}")

    def errors(self) -> list[str]:
        """Console errors, uncaught exceptions and failed loads seen so far."""
        out = []
        for e in self.events:
            p = e.get("params", {})
            if e.get("method") == "Runtime.exceptionThrown":
                out.append(json.dumps(p["exceptionDetails"])[:500])
            elif e.get("method") == "Runtime.consoleAPICalled" and p["type"] in ("error", "assert"):
                out.append(json.dumps(p["args"])[:500])
            elif e.get("method") == "Log.entryAdded" and p["entry"]["level"] == "error":
                out.append(p["entry"]["text"])
        return out

    def requests(self) -> list[str]:
        return [
            e["params"]["request"]["url"]
            for e in self.events
            if e.get("method") == "Network.requestWillBeSent"
        ]


@pytest.fixture
def browser(tmp_path: Path):
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (apt-get install chromium); .ci/run installs it")
    profile = tmp_path / "chromium-profile"
    proc = subprocess.Popen(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--no-first-run", "--disable-extensions", "--disable-background-networking",
         "--disable-sync",
         "--proxy-server=127.0.0.1:9", "--proxy-bypass-list=<-loopback>",
         "--remote-debugging-port=0", "--remote-debugging-address=127.0.0.1",
         f"--user-data-dir={profile}", "--window-size=1280,1000", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        port_file = profile / "DevToolsActivePort"
        end = time.monotonic() + 60
        while not (port_file.is_file() and port_file.read_text().count("\n") >= 1):
            if proc.poll() is not None or time.monotonic() > end:
                pytest.fail(f"chromium did not start (exit code {proc.poll()})")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with direct.open(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
            pages = [t for t in json.load(r) if t["type"] == "page"]
        tools = DevTools(pages[0]["webSocketDebuggerUrl"])
        for domain in ("Runtime", "Log", "Page", "Network"):
            tools.call(f"{domain}.enable")
        yield tools
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def _screenshot(tools: DevTools, path: Path) -> None:
    size = tools.call("Page.getLayoutMetrics")["cssContentSize"]
    shot = tools.call(
        "Page.captureScreenshot", format="png", captureBeyondViewport=True,
        clip={"x": 0, "y": 0, "width": 1280, "height": min(size["height"], 6000), "scale": 1},
    )  # fmt: skip
    path.write_bytes(base64.b64decode(shot["data"]))
    if target := os.environ.get("AUTOINTERP_SCREENSHOT_DIR"):
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(target) / path.name)


def test_report_in_headless_chromium(tmp_path: Path, browser: DevTools) -> None:
    with fill_run(tmp_path / "run", 6) as store:  # and a simulation of latent 2's example 0
        guess = [0.0, 0.0, 10.0, 5.0] + [0.0] * (len(WORDS) - 4)
        store.put_score(1, Score(LatentRef(SOURCE, 2), "simulation", "default", 0.8, {},
                                 (Prediction(0, 10.0, 10.0),), 0,
                                 {"token_predictions": {"0": guess}}))  # fmt: skip
    index = write_report(tmp_path / "run", settings=ReportSettings(rows_per_file=4))
    url = index.resolve().as_uri() + f"#latent={SOURCE}:2"
    browser.call("Page.navigate", url=url)
    browser.wait_for("document.body && document.body.getAttribute('data-ready') === '1'")
    assert browser.evaluate("document.querySelectorAll('#rows tr').length") == 6
    assert browser.evaluate("document.querySelectorAll('#head th').length") == 8
    # the card of latent 2 (opened from the URL) shows its tokens, shaded by activation
    browser.wait_for("document.querySelectorAll('#card .tok.hot').length > 0")
    hot = browser.evaluate(
        "[...document.querySelector('#card .example').querySelectorAll('.tok.hot')]"
        ".map(s => [s.textContent, s.style.backgroundColor, s.title])"
    )
    assert hot == [
        [" sat", "rgb(255, 140, 0)", "activation 4"],
        [" on", "rgba(255, 140, 0, 0.25)", "activation 1"],
    ]
    assert browser.evaluate("document.querySelector('#card .explanation').textContent") == (
        "the word number 2 <b>"
    )
    assert browser.evaluate("document.querySelector('#card .chips').textContent").endswith(
        " cat dog"
    )
    preds = browser.evaluate("[...document.querySelectorAll('#card .pred')].map(p => p.className)")
    assert "pred bad" not in preds and "pred none" in preds and "pred ok" in preds
    sim = browser.evaluate(
        "[...document.querySelectorAll('#card .sim .tok')].filter(s => s.style.backgroundColor)"
        ".map(s => [s.textContent, s.title])"
    )
    assert sim == [[" sat", "predicted 10 of 10"], [" on", "predicted 5 of 10"]]
    assert browser.evaluate("document.querySelectorAll('#agreement-matrix td').length") == 9
    # the run's analyses (`autointerp analyze`, written with the report) are linked and open
    linked = browser.evaluate(
        "[...document.querySelectorAll('#plots a')].map(a => a.getAttribute('href'))"
        ".filter(h => h.startsWith('analyses/'))"
    )
    assert linked == ["analyses/deciles.svg", "analyses/correlations.svg"]
    browser.evaluate("document.querySelector('#plots a[href=\"analyses/deciles.svg\"]')"
                     ".scrollIntoView()")  # fmt: skip
    browser.wait_for(
        "[...document.images].filter(i => i.src.includes('/analyses/'))"
        ".every(i => i.complete && i.naturalWidth > 0)"
    )
    assert browser.evaluate("[...document.images].every(i => i.complete && i.naturalWidth > 0)")
    _screenshot(browser, tmp_path / "report-card.png")

    # sort by detection (descending), then filter by text: the table follows
    browser.evaluate("document.querySelectorAll('#head th')[2].click()")
    order = browser.evaluate("[...document.querySelectorAll('#rows tr td:first-child')]"
                             ".map(td => td.textContent)")  # fmt: skip
    assert order[-1] == "1" and order[:2] == ["2", "5"], order  # unscored latent 1 last
    browser.evaluate(
        "const f = document.getElementById('filter'); f.value = 'number 4';"
        "f.dispatchEvent(new Event('input'))"
    )
    assert browser.evaluate("document.querySelectorAll('#rows tr').length") == 1
    assert browser.errors() == []
    assert all(u.startswith(("file://", "data:")) for u in browser.requests()), browser.requests()
    assert (tmp_path / "report-card.png").stat().st_size > 10_000


def test_several_explainers_in_headless_chromium(tmp_path: Path, browser: DevTools) -> None:
    fill_two_explainers(tmp_path / "run")
    index = write_report(tmp_path / "run")
    browser.call("Page.navigate", url=index.resolve().as_uri())
    browser.wait_for("document.body && document.body.getAttribute('data-ready') === '1'")
    heads = browser.evaluate("[...document.querySelectorAll('#head th')].map(t => t.textContent)")
    assert heads[:6] == [
        "latent", "explanation (contrastive)", "explanation (default)",
        "detection (contrastive)", "detection (default)", "fuzzing (default)",
    ]  # fmt: skip
    cells = browser.evaluate(
        "[...document.querySelector('#rows tr').querySelectorAll('td')].map(t => t.textContent)"
    )
    assert cells[:5] == ["0", "contrast view 0", "the word number 0 <b>", "0", "0.5"]
    missing = browser.evaluate("document.querySelectorAll('#rows tr')[1].children[1].textContent")
    assert missing == "no explanation"
    # the filter searches every explainer's text
    for query, n in (("contrast view", 3), ("number 3", 1)):
        browser.evaluate(
            f"{{ const f = document.getElementById('filter'); f.value = {query!r};"
            "f.dispatchEvent(new Event('input')) }"
        )
        assert browser.evaluate("document.querySelectorAll('#rows tr').length") == n, query
    assert browser.errors() == []


def test_large_report_paginates_and_lazy_loads(tmp_path: Path, browser: DevTools) -> None:
    fill_run(tmp_path / "run", 450, n_examples=1).close()
    index = write_report(
        tmp_path / "run", settings=ReportSettings(rows_per_file=100, cards_per_file=50)
    )
    browser.call("Page.navigate", url=index.resolve().as_uri())
    browser.wait_for("document.body && document.body.getAttribute('data-ready') === '1'")
    assert browser.evaluate("document.querySelectorAll('#rows tr').length") == 100
    assert "page 1 of 5 (450 of 450 latents)" in browser.evaluate(
        "document.getElementById('page').textContent"
    )
    browser.evaluate("document.getElementById('last').click()")
    assert browser.evaluate("document.querySelectorAll('#rows tr').length") == 50
    # no card file is loaded until a card is opened; then only that one
    loaded = "[...document.scripts].map(s => s.src).filter(s => s.includes('latents-'))"
    assert browser.evaluate(loaded) == []
    browser.evaluate("document.querySelector('#rows tr:last-child').click()")
    browser.wait_for("document.querySelectorAll('#card .tok.hot').length > 0")
    assert [s.rsplit("/", 1)[1] for s in browser.evaluate(loaded)] == ["latents-0009.js"]
    assert browser.errors() == []


def test_run_ends_with_its_report(
    autointerp_llm_server: Any, autointerp_cli: Any, tmp_path: Path, request: Any
) -> None:
    """A real `autointerp run` (tiny model, scripted LLM) writes the report and says how to open
    it; the page (when Chromium is here) shows the run's latents and their cards."""
    autointerp_llm_server.responder = scripted_answers()
    model = save_tiny(tiny_model("gpt2"), tmp_path / "model")
    base_url = autointerp_llm_server.openai_base_url
    config = str(write_run_config(tmp_path / "run.toml", base_url=base_url, model=model))
    result = autointerp_cli("run", config)
    assert result.exit_code == 0, result.stderr
    index = tmp_path / "run" / "report" / "index.html"
    assert f"report: {index}" in result.stdout
    assert f"autointerp report {tmp_path / 'run'} --open" in result.stdout
    if CHROMIUM is not None:
        _check_run_page(request.getfixturevalue("browser"), index, tmp_path)

    shutil.rmtree(index.parent)  # a resumed run with --no-report leaves it unwritten
    again = autointerp_cli("run", config, "--no-report")
    assert again.exit_code == 0, again.stderr
    assert "report:" not in again.stdout and not index.parent.exists()


def test_run_finished_hook_writes_the_report_or_says_why_not(tmp_path: Path) -> None:
    from autointerp_report.plugin import autointerp_run_finished

    fill_run(tmp_path / "run", 2).close()
    line = autointerp_run_finished(tmp_path / "run", 1, "failed", frozenset())
    index = tmp_path / "run" / "report" / "index.html"
    assert line == f"report: {index} (open it with `autointerp report {tmp_path / 'run'} --open`)"
    assert index.is_file()
    assert autointerp_run_finished(tmp_path / "gone", 1, "finished", frozenset({"report"})) is None
    missing = autointerp_run_finished(tmp_path / "gone", 1, "finished", frozenset())
    assert missing is not None and missing.startswith("report not written: ")
    assert "has no results.sqlite" in missing
    assert missing.endswith(f"; retry with `autointerp report {tmp_path / 'gone'}`")


def _check_run_page(browser: DevTools, index: Path, tmp_path: Path) -> None:
    browser.call("Page.navigate", url=index.resolve().as_uri())
    browser.wait_for("document.body && document.body.getAttribute('data-ready') === '1'")
    assert browser.evaluate("document.querySelectorAll('#rows tr').length") == 4
    browser.evaluate("document.querySelector('#rows tr').click()")
    browser.wait_for("document.querySelectorAll('#card .tok.hot').length > 0")
    assert browser.evaluate("document.querySelector('#card .explanation').textContent") == (
        "code words"
    )
    assert browser.evaluate("document.querySelectorAll('#card .pred').length") > 0
    assert "· finished ·" in browser.evaluate("document.getElementById('summary').textContent")
    _screenshot(browser, tmp_path / "report-run.png")
    assert browser.errors() == []


def test_empty_run_report_loads(tmp_path: Path, browser: DevTools) -> None:
    with Store.open(tmp_path / "run") as store:
        store.start_run("empty", {})
    index = write_report(tmp_path / "run")
    browser.call("Page.navigate", url=index.resolve().as_uri())
    browser.wait_for("document.body && document.body.getAttribute('data-ready') === '1'")
    assert browser.evaluate("document.querySelectorAll('#rows tr').length") == 0
    assert "0 of 0 latents" in browser.evaluate("document.getElementById('page').textContent")
    assert browser.errors() == []


def test_plots_ticks_log_axis_and_subsampling() -> None:
    from autointerp_report import plots

    assert plots.nice_ticks(0.0, 1.0) == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert plots.nice_ticks(-0.37, 0.91) == [-0.2, 0.0, 0.2, 0.4, 0.6, 0.8]
    ns = {"s": "http://www.w3.org/2000/svg"}
    freq = [10.0**-k for k in (1, 2, 3, 4)] * 1500  # 6000 points
    svg = plots.scatter(freq, [0.5] * 6000, title="t", xlabel="f", ylabel="s", logx=True)
    root = ET.fromstring(svg)
    assert root.find("s:title", ns).text == f"t ({plots.MAX_POINTS} of 6000 shown)"
    assert svg.count("h0") == plots.MAX_POINTS
    labels = [t.text for t in root.findall("s:text", ns)]
    assert {"1e-4", "0.001", "0.01", "0.1"} <= set(labels)  # one tick per decade
    # values <= 0 cannot sit on a log axis: left out, not drawn at -inf
    assert plots.scatter([0.0, -1.0], [1, 2], title="t", xlabel="f", ylabel="s", logx=True).count(
        "no pairs to plot"
    )
    assert "no values" in plots.histogram([float("nan")], title="h", xlabel="x")


def test_hostile_names_and_explanations_cannot_break_the_page(tmp_path: Path) -> None:
    hostile = "x<!--<script>alert(1)</script>\u2028"
    with Store.open(tmp_path / "run") as store:
        run = store.start_run(hostile, {"seed": 0})
        ref = LatentRef(SOURCE, 0)
        store.put_latents(run, SOURCE, [{"index": 0, "frequency": 0.1, "max_activation": 1.0}])
        store.put_explanation(run, Explanation(ref, hostile, "default"))
        store.finish_run(run)
    html = write_report(tmp_path / "run").read_text()
    page_scripts = html.count("<script")
    assert "<!--" not in html.replace("<!-- ", "")  # none from the data (template comments aside)
    assert hostile not in html
    scripts = [part.split("</script>")[0] for part in html.split("<script")[1:]]
    assert not any("\u2028" in part or "<!--" in part for part in scripts)
    fill_run(tmp_path / "plain", 1).close()
    plain = write_report(tmp_path / "plain").read_text().count("<script")
    assert page_scripts == plain  # the hostile data added no script element


def test_report_reads_stats_by_part_and_keeps_latents_known_only_by_failure(tmp_path: Path) -> None:
    store = fill_run(tmp_path / "run", 5)
    run = store.runs()[-1].id
    stray = LatentRef(SOURCE, 40)  # failed before its stats were stored: no latents row
    store.put_failure(run, stray, "explain", "default", "timed out")
    store.close()
    settings = ReportSettings(rows_per_file=2, cards_per_file=2, read_chunk=2, workers=1)
    out = write_report(tmp_path / "run", settings=settings).parent
    rows = [r for p in sorted((out / "data").glob("rows-*.js")) for r in _jsonp(p)[2]]
    assert [r[2] for r in rows] == [0, 1, 2, 3, 4, 40] and rows[-1][6] == 1
    assert rows[3][4] == 10**-4 and rows[-1][4] is None  # stats read per chunk; none for 40
    cards = [c for p in sorted((out / "data").glob("latents-*.js")) for c in _jsonp(p)[2]]
    assert cards[3]["f"] == 10**-4 and cards[3]["m"] == 5.0 and cards[3]["x"] == {"mean": 0.5}
    assert "f" not in cards[-1] and cards[-1]["fl"] == [["default", "timed out"]]
