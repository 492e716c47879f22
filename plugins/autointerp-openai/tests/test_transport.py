"""How requests travel: the lean HTTP/1.1 client by default (no SDK on the hot path), the SDK
where a proxy applies, answers in every framing a server may use, stale keep-alive connections,
and answers that survive the process being killed right after they were returned."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import socketserver
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from autointerp_openai.client import OpenAIClient, compatible
from autointerp_openai.plugin import OpenAICompatibleConfig, OpenAIConfig

from autointerp.llm import (
    LLMClient,
    LLMConnectionError,
    LLMTimeoutError,
    MalformedResponseError,
    Message,
    SamplingParams,
    Scheduler,
)
from autointerp.store import Store
from autointerp.testing.llm_server import (
    ScriptedLLMServer,
    hang,
    malformed,
    rate_limit,
    reject,
    server_error,
)

FAST = dict(backoff_base_s=0.02, backoff_max_s=0.1, breaker_cooldown_s=0.05, timeout_s=1.0)


def make(base_url: str, **options: object) -> LLMClient:
    backend = compatible(OpenAICompatibleConfig(base_url=base_url, **{**FAST, **options}))
    return LLMClient(backend, scheduler=Scheduler())


def ask_all(client: LLMClient, texts: list[str], pause: float = 0.0) -> list[str]:
    async def go() -> list[str]:
        out = []
        try:
            for text in texts:
                out.append((await client.chat([Message("user", text)])).text)
                await asyncio.sleep(pause)
        finally:
            await client.aclose()
        return out

    return asyncio.run(go())


def completion(text: str) -> bytes:
    return json.dumps(
        {
            "choices": [
                {"message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
            ],
            "usage": {"prompt_tokens": 3, "completion_tokens": 1},
        }
    ).encode()


class RawServer(socketserver.ThreadingTCPServer):
    """Answers each request with ``respond(body)``: raw HTTP bytes and whether to close the
    connection afterwards (``linger``: how long it keeps an idle connection open)."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, respond: Callable[[dict], tuple[bytes, bool]], linger: float = 30) -> None:
        self.respond = respond
        self.linger = linger
        self.connections = 0
        self.requests = 0
        super().__init__(("127.0.0.1", 0), Handler)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


class Handler(socketserver.StreamRequestHandler):
    server: RawServer

    def handle(self) -> None:
        self.server.connections += 1
        self.connection.settimeout(self.server.linger)
        while True:
            try:
                head = b""
                while not head.endswith(b"\r\n\r\n"):
                    line = self.rfile.readline()
                    if not line:
                        return
                    head += line
            except TimeoutError:
                return  # an idle keep-alive connection the server gives up on
            length = next(
                int(line.split(b":")[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length")
            )
            body = json.loads(self.rfile.read(length))
            self.server.requests += 1
            raw, close = self.server.respond(body)
            self.wfile.write(raw)
            self.wfile.flush()
            if close:
                return


@pytest.fixture
def raw_server(request: pytest.FixtureRequest) -> Iterator[Callable[..., RawServer]]:
    servers: list[RawServer] = []

    def start(respond: Callable[[dict], tuple[bytes, bool]], linger: float = 30) -> RawServer:
        server = RawServer(respond, linger)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def last_text(body: dict) -> str:
    return "answer to " + body["messages"][-1]["content"]


def test_requests_go_over_http_directly_without_importing_the_sdk(
    autointerp_llm_server: ScriptedLLMServer,
) -> None:
    code = (
        "import asyncio, sys\n"
        "from autointerp_openai.client import compatible\n"
        "from autointerp_openai.plugin import OpenAICompatibleConfig\n"
        "from autointerp.llm import LLMClient, Message\n"
        "backend = compatible(OpenAICompatibleConfig(base_url=sys.argv[1]))\n"
        "client = LLMClient(backend)\n"
        "async def go():\n"
        "    answer = await client.chat([Message('user', 'hi')])\n"
        "    await client.aclose()\n"
        "    return answer.text\n"
        "print(asyncio.run(go()), backend.direct, 'openai' in sys.modules)\n"
    )
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    url = autointerp_llm_server.openai_base_url
    out = subprocess.run(
        [sys.executable, "-c", code, url], capture_output=True, text=True, check=True, env=env
    )
    assert out.stdout.split() == ["Explanation:", "a", "test", "feature", "True", "False"]


def test_a_proxy_from_the_environment_is_honoured_through_the_sdk(
    autointerp_llm_server: ScriptedLLMServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy", "HTTPS_PROXY", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    # the scripted server plays the proxy: it answers the absolute URL it is sent
    monkeypatch.setenv("HTTP_PROXY", autointerp_llm_server.url)
    monkeypatch.setenv("http_proxy", autointerp_llm_server.url)
    nowhere = "http://192.0.2.1:9/v1"  # TEST-NET: unreachable but for the proxy
    client = make(nowhere)
    assert not client.backend.direct  # type: ignore[attr-defined]
    assert ask_all(client, ["hi"]) == ["Explanation: a test feature"]
    assert autointerp_llm_server.requests[0].path == nowhere + "/chat/completions"
    direct = make(nowhere, transport="direct")
    assert direct.backend.direct  # type: ignore[attr-defined]


def test_chunked_answers_and_answers_that_close_the_connection_are_read(
    raw_server: Callable[..., RawServer],
) -> None:
    def chunked(body: dict) -> tuple[bytes, bool]:
        data = completion(last_text(body))
        parts = [data[:10], data[10:]]
        framed = b"".join(b"%x;ext=1\r\n%s\r\n" % (len(p), p) for p in parts)
        head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        return head + b"Transfer-Encoding: chunked\r\n\r\n" + framed + b"0\r\n\r\n", False

    def closing(body: dict) -> tuple[bytes, bool]:
        data = completion(last_text(body))
        head = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: %d\r\n\r\n" % len(data)
        return head + data, True

    def until_eof(body: dict) -> tuple[bytes, bool]:  # HTTP/1.0, no length: read to the end
        return b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n" + completion(
            last_text(body)
        ), True

    for respond, connections in [(chunked, 1), (closing, 3), (until_eof, 3)]:
        server = raw_server(respond)
        client = make(server.base_url)
        assert ask_all(client, ["a", "b", "c"]) == ["answer to a", "answer to b", "answer to c"]
        assert server.connections == connections, respond.__name__
        assert not client.stats.errors, respond.__name__


def test_an_idle_connection_the_server_dropped_is_not_reused(
    raw_server: Callable[..., RawServer],
) -> None:
    def reply(body: dict) -> tuple[bytes, bool]:
        data = completion(last_text(body))
        return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(data) + data, False

    server = raw_server(reply, linger=0.1)  # a keep-alive timeout of 0.1 s
    client = make(server.base_url)
    assert ask_all(client, ["a", "b", "c"], pause=0.4) == [
        "answer to a",
        "answer to b",
        "answer to c",
    ]
    assert server.requests == 3 and server.connections == 3
    assert not client.stats.errors  # no request was sent on a dead connection


def test_transport_failures_say_what_failed(autointerp_llm_server: ScriptedLLMServer) -> None:
    server = autointerp_llm_server
    backend = compatible(OpenAICompatibleConfig(base_url=server.openai_base_url))

    async def attempt() -> BaseException:
        try:
            await backend.complete([Message("user", "q")], SamplingParams(), timeout=0.3)
        except Exception as exc:
            return exc
        finally:
            await backend.aclose()
        raise AssertionError("no error")

    server.script(hang(5))
    timeout = asyncio.run(attempt())
    assert isinstance(timeout, LLMTimeoutError) and timeout.where == "read"
    assert "no answer within 0.3s" in str(timeout) and timeout.blames_endpoint
    server.script(malformed())
    assert isinstance(asyncio.run(attempt()), MalformedResponseError)
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    backend = compatible(OpenAICompatibleConfig(base_url=f"http://127.0.0.1:{port}/v1"))
    refused = asyncio.run(attempt())
    assert isinstance(refused, LLMConnectionError) and "connection failed" in str(refused)


KILLED = """
import asyncio, sys
from autointerp_openai.client import compatible
from autointerp_openai.plugin import OpenAICompatibleConfig
from autointerp.llm import Message, wrap
from autointerp.store import Store

store = Store.open(sys.argv[2])
run = store.bind(store.start_run("killed", {}))
client = wrap(compatible(OpenAICompatibleConfig(base_url=sys.argv[1])), store=run)

async def one(i):
    answer = await client.chat([Message("user", f"latent {i}")])
    print(answer.request_hash, flush=True)  # returned to its caller: must be on disk now

async def main():
    await asyncio.gather(*(one(i) for i in range(400)))

asyncio.run(main())
"""


def test_every_answer_returned_survives_the_process_being_killed(
    autointerp_llm_server: ScriptedLLMServer, tmp_path: Path
) -> None:
    server = autointerp_llm_server
    server.latency = 0.02
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED, server.openai_base_url, str(tmp_path)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    returned = []
    deadline = time.monotonic() + 60
    while len(returned) < 150 and time.monotonic() < deadline:
        returned.append(proc.stdout.readline().strip())
    proc.send_signal(signal.SIGKILL)  # mid-run, while hundreds are in flight or being written
    proc.wait()
    assert len(returned) == 150 and all(returned)
    with Store.open(tmp_path) as store:
        missing = [h for h in returned if store.get_llm_call(h) is None]
        assert not missing
        assert store.usage().calls >= len(returned)


@pytest.mark.parametrize("config", [OpenAIConfig, OpenAICompatibleConfig])
def test_served_endpoints_get_hundreds_of_requests_in_flight(config: type[OpenAIConfig]) -> None:
    assert config().max_concurrency >= 256
    assert config().transport == "auto"


def test_a_key_is_sent_but_never_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-transport-test-key-0123456789")
    backend = OpenAIClient(OpenAIConfig(base_url="http://127.0.0.1:9/v1"))

    async def origin_repr() -> str:
        return repr(backend._origins.get(backend._new_origin))

    assert "sk-transport" not in asyncio.run(origin_repr()) + repr(backend)


def test_errors_read_the_same_whichever_way_the_request_went(
    autointerp_llm_server: ScriptedLLMServer,
) -> None:
    server = autointerp_llm_server

    def error(transport: str, fault: object) -> BaseException:
        server.script(fault)  # type: ignore[arg-type]
        backend = compatible(
            OpenAICompatibleConfig(base_url=server.openai_base_url, transport=transport)
        )

        async def go() -> BaseException:
            try:
                await backend.complete([Message("user", "q")], SamplingParams(), timeout=2)
            except Exception as exc:
                return exc
            finally:
                await backend.aclose()
            raise AssertionError("no error")

        return asyncio.run(go())

    for fault in [reject(400, "unknown parameter"), rate_limit(0.25), server_error(503)]:
        direct, sdk = error("direct", fault), error("sdk", fault)
        assert type(direct) is type(sdk) and str(direct) == str(sdk)
        assert direct.status == sdk.status  # type: ignore[attr-defined]
        assert getattr(direct, "retry_after", None) == getattr(sdk, "retry_after", None)
