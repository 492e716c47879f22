# ruff: noqa: E501  (an analysis script behind benchmarks/RESULTS.md: tables built in long f-strings)
"""Classify every scorer answer stored in runs' llm_calls: first attempt or re-ask, and whether
it parses (right count, only 0/1), is all one class, or copies the prompt's few-shot answer.

usage: python diag.py RUN_DIR [RUN_DIR...]   (markdown on stdout)
"""

from __future__ import annotations

import re
import sqlite3
import sys
from collections import Counter

from autointerp_scorers.common import parse_keyed, parse_list

from autointerp.llm import ParseError
from autointerp.store import unpack_json

print(
    "| run | scorer prompt | attempt | answers | parsed | wrong count | not 0/1 | truncated (max_tokens) | "
    "all one class (of parsed) | = few-shot answer |"
)
print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|")
for run in sys.argv[1:]:
    con = sqlite3.connect(f"file:{run}/results.sqlite?mode=ro", uri=True)
    stats: dict[tuple[str, str], Counter] = {}
    for req, resp in con.execute("select request, response from llm_calls"):
        req, resp = unpack_json(req), unpack_json(resp)
        msgs = req["messages"]
        system = msgs[0]["content"]
        if "explain what a neuron" in system or "true meaning" in system:
            continue
        kind = "fuzzing" if "marked" in system else "detection"
        keyed = "JSON object" in system
        first_user = next(
            i for i in range(len(msgs) - 1, -1, -1) if msgs[i]["content"].startswith("Explanation:")
        )
        n = len(re.findall(r"^Example \d+:", msgs[first_user]["content"], flags=re.M))
        attempt = "first" if first_user == len(msgs) - 1 else "re-ask"
        few_shot = msgs[2]["content"] if len(msgs) > 2 and msgs[2]["role"] == "assistant" else ""
        text = resp["text"]
        c = stats.setdefault((f"{kind}{' (keyed JSON)' if keyed else ''}", attempt), Counter())
        c["answers"] += 1
        c["copy"] += text.strip() == few_shot.strip() or (
            not keyed
            and few_shot
            and text.strip().rstrip("]").startswith(few_shot.strip().rstrip("]"))
        )
        try:
            ans = parse_keyed(text, n) if keyed else parse_list(text, n)
            vals = [v for v in ans.values if v is not None]
            c["parsed"] += 1
            c["one_class"] += len(set(vals)) == 1
        except ParseError as exc:
            msg = str(exc)
            if "expected" in msg:
                c["count"] += 1
            elif "is not an answer" in msg:
                c["value"] += 1
            c["trunc"] += resp.get("finish_reason") == "length"
    for (kind, attempt), c in sorted(stats.items()):
        print(
            f"| {run.rstrip('/').split('/')[-1]} | {kind} | {attempt} | {c['answers']} | {c['parsed']} | {c['count']} | "
            f"{c['value']} | {c['trunc']} | {c['one_class']}/{c['parsed']} | {c['copy']} |"
        )
