"""autointerp.fastjson: the LLM hot path's JSON reads and writes give what :mod:`json` gives, and
what it writes (into the store) stays readable by plain ``json.loads``."""

from __future__ import annotations

import json
import math
import random
import zlib

import pytest

from autointerp import fastjson
from autointerp.store import Store
from autointerp.types import LLMCall


def _values() -> list[object]:
    rng = random.Random(0)
    floats = [rng.uniform(-30, 0) for _ in range(200)] + [
        math.exp(rng.uniform(-60, 5)) for _ in range(200)
    ]
    return [
        {"a": 1, "b": [1.5, -0.1, 1e-05, 1e300, 2**70], "c": None, "d": True, "é": "ü\u2028😀"},
        floats,
        [[f"tok{i}", -0.1 * i, [[f"alt{j}", -1.1 - j] for j in range(5)]] for i in range(50)],
        'line\nbreak "quoted" \\ \x1f',
        [],
        {},
    ]


def test_loads_gives_json_s_values_and_errors() -> None:
    for value in _values():
        text = json.dumps(value)
        assert fastjson.loads(text) == json.loads(text)
        assert fastjson.loads(text.encode()) == json.loads(text)
    assert math.isnan(fastjson.loads("[NaN]")[0]) and fastjson.loads("[-Infinity]") == [-math.inf]
    assert fastjson.loads('"\\ud800"') == "\ud800"  # a lone surrogate: json's answer
    with pytest.raises(json.JSONDecodeError):
        fastjson.loads('{"a": 1,')


def test_dumps_round_trips_through_plain_json() -> None:
    for value in _values():
        assert json.loads(fastjson.dumps(value)) == value
    assert json.loads(fastjson.dumps(("a", (1.0, 2)))) == ["a", [1.0, 2]]
    assert json.loads(fastjson.dumps(["a\ud800"])) == ["a\ud800"]  # json writes what Rust cannot
    with pytest.raises(TypeError):
        fastjson.dumps({"a": object()})


def test_a_stored_llm_call_reads_back_with_plain_json(tmp_path) -> None:
    response = {
        "text": "1",
        "logprobs": [["1", -0.1, [["1", -0.1], ["0", -2.4e-07]]]],
        "cost_usd": 0.0,
    }
    request = {"messages": [{"role": "user", "content": "é <<x>>"}], "params": {"temperature": 0.0}}
    with Store(tmp_path / "results.sqlite") as store:
        run = store.start_run("r", {})
        store.put_llm_call(
            LLMCall(request_hash="h", client="c", model="m", request=request, response=response),
            run,
        )
        assert store.get_llm_call("h").response == response
        raw = store._conn.execute("SELECT request, response FROM llm_calls").fetchone()
    # stored zlib-compressed (schema 9): plain json reads it once decompressed
    assert json.loads(zlib.decompress(raw[0])) == request
    assert json.loads(zlib.decompress(raw[1])) == response
