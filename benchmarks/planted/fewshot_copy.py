# ruff: noqa: E501  (an analysis script behind benchmarks/RESULTS.md: tables built in long f-strings)
"""How often a scorer answer begins with its prompt's few-shot answer (digits in order).

usage: python fewshot_copy.py RUN_DIR...  (chance for a 4-answer prefix: 1/16 if answers were
independent fair coins; reported beside the observed share of 1s, which sets the real chance)."""

import re
import sqlite3
import sys

from autointerp.store import unpack_json

for run in sys.argv[1:]:
    con = sqlite3.connect(f"file:{run}/results.sqlite?mode=ro", uri=True)
    rows = {}
    for req, resp in con.execute("select request, response from llm_calls"):
        req, resp = unpack_json(req), unpack_json(resp)
        msgs = req["messages"]
        if "explain what a neuron" in msgs[0]["content"] or "true meaning" in msgs[0]["content"]:
            continue
        kind = ("fuzzing" if "marked" in msgs[0]["content"] else "detection") + (
            " keyed" if "JSON" in msgs[0]["content"] else " list"
        )
        shot = re.findall(
            r":\s*([01])\b" if "JSON" in msgs[0]["content"] else r"[01]", msgs[2]["content"]
        )
        text = resp["text"]
        got = re.findall(
            r":\s*([01])\b" if "JSON" in msgs[0]["content"] else r"\b[01]\b",
            text.split("Answer")[-1],
        )
        r = rows.setdefault(kind, [0, 0, 0, 0])
        r[0] += 1
        r[1] += got[: len(shot)] == shot
        r[2] += sum(g == "1" for g in got)
        r[3] += len(got)
    for kind, (n, copies, ones, total) in rows.items():
        p1 = ones / total if total else 0
        print(
            f"{run}: {kind}: {copies}/{n} answers begin with the few-shot answer; share of 1s {p1:.2f}"
        )
