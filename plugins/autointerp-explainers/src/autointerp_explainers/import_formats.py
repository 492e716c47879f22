"""Reading explanations other tools published, and mapping them onto a run's latents.

Three formats, each read into one table ``label -> {latent index -> explanation}`` where the label
is the file's own name for the latents' module or layer:

- ``delphi``: EleutherAI delphi's explanations directory (the paper *Automatically Interpreting
  Millions of Features in LLMs*): one file per latent, ``<module>_latent<N>.txt``, holding the
  explanation as a JSON string (``<module>_feature<N>.txt`` in its predecessor sae-auto-interp);
  and the per-module files of the released explanations dataset,
  ``<module>_feature.json``, a JSON object ``{"<N>": "explanation"}``. Label: the module name
  (``layers.6.mlp``), prefixed by its sub-folder when the directory is nested.
- ``neuronpedia``: Neuronpedia explanation exports, JSON Lines (optionally gzipped) or JSON
  arrays of ``{"modelId", "layer", "index", "description", "typeName",
  "explanationModelName"}``, and feature records carrying ``"explanations": [{"description",
  ...}]`` (the ``/api/feature`` answers, and ``autointerp export --format neuronpedia``, whose
  ``autointerp.source`` is used as the label when present). Label: ``layer`` (``6-res-jb``).
- ``autointerp``: our own export, ``explanations.jsonl`` / ``.parquet`` rows ``{"source",
  "latent", "explainer", "explanation"}``. Label: ``source`` (``sae/resid_post.6``).

A bad record never stops an import: it is skipped with a one-line :class:`Problem` naming the
file, line or key, the field and what was expected. Files that cannot be read at all raise
:class:`ImportFormatError`. Only the standard library is imported here (Parquet: pyarrow, lazily).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from autointerp.errors import AutointerpError

Format = Literal["auto", "delphi", "neuronpedia", "autointerp"]
FORMATS: tuple[str, ...] = ("delphi", "neuronpedia", "autointerp")

#: what delphi writes when its explainer's answer could not be used: not an explanation
DELPHI_PLACEHOLDERS = frozenset({"Explanation could not be parsed.", "No explanation found"})

#: <module>_latent<N>.txt (delphi), <module>_feature<N>.txt (its predecessor sae-auto-interp)
_DELPHI_LATENT = re.compile(r"^(?P<module>.+)_(?:latent|feature)(?P<index>\d+)\.txt$")
_DELPHI_MODULE = re.compile(r"^(?P<module>.+)_feature\.json$")
_JSON_SUFFIXES = (".json", ".jsonl", ".json.gz", ".jsonl.gz")


class ImportFormatError(AutointerpError):
    """A file of explanations cannot be read, or its latents cannot be mapped onto a run's."""


@dataclass(frozen=True)
class Imported:
    """One imported explanation: its text, where it was read, and who made it (when known)."""

    text: str
    where: str
    kind: str = ""  #: explainer (autointerp) or typeName (Neuronpedia)
    model: str = ""  #: the LLM that wrote it (Neuronpedia's explanationModelName)


@dataclass(frozen=True)
class Problem:
    """A record skipped: where (``file:line``, ``file: key '3'``), why (short, for the summary)
    and the one-line message; ``latent`` = (label, index) when the record named its latent."""

    where: str
    reason: str
    detail: str = ""
    latent: tuple[str, int] | None = None

    def __str__(self) -> str:
        return f"{self.where}: {self.reason}" + (f" ({self.detail})" if self.detail else "")


@dataclass
class ImportedFile:
    """The explanations of a file (or directory) by label and latent index; records skipped."""

    path: Path
    format: str
    labels: dict[str, dict[int, Imported]] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    _skipped: dict[tuple[str, int], str] | None = field(default=None, repr=False)

    @property
    def n_imported(self) -> int:
        return sum(len(t) for t in self.labels.values())

    def skip_counts(self) -> Counter[str]:
        """How many records were skipped for each reason."""
        return Counter(p.reason for p in self.problems)

    def why_missing(self, label: str, index: int) -> str | None:
        """The reason a record of this latent was skipped, if one was (indexed on first use)."""
        if self._skipped is None:
            self._skipped = {}
            for p in self.problems:
                if p.latent is not None:
                    self._skipped.setdefault(p.latent, str(p))
        return self._skipped.get((label, index))

    def summary(self) -> str:
        """``imported N explanations ...; skipped M: 2 × reason, ...`` (one line)."""
        labels = ", ".join(f"{k} ({len(v)})" for k, v in sorted(self.labels.items()))
        line = (
            f"imported {self.n_imported} explanations from {self.path} "
            f"(format {self.format}; {labels or 'none'})"
        )
        counts = self.skip_counts()
        if counts:
            parts = ", ".join(f"{n} × {why}" for why, n in counts.most_common())
            line += f"; skipped {sum(counts.values())}: {parts}"
        return line


# -- content hash ----------------------------------------------------------------------------------


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def content_sha256(path: Path) -> str:
    """sha256 of a file's bytes; of a directory, over every file's relative path and sha256
    (sorted): any change to what an import reads changes it."""
    if path.is_file():
        return _file_sha256(path)
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        rel = file.relative_to(path).as_posix()
        digest.update(f"{rel}\0{_file_sha256(file)}\n".encode())
    return digest.hexdigest()


# -- layers and labels -----------------------------------------------------------------------------

_NP_LAYER = re.compile(r"^(\d+)-")
_MODULE_LAYER = re.compile(r"(?:^|[._])(?:layers|layer|h|blocks|block)[._](\d+)(?:[._]|$)")


def layer_of(label: str) -> int | None:
    """The layer a label names: ``6-res-jb`` (Neuronpedia), ``layers.6.mlp`` /
    ``model.layers.6`` (delphi), ``sae/resid_post.6`` (autointerp) -> 6; None if it names none."""
    name = label.rsplit("/", 1)[-1]
    for pattern in (_NP_LAYER, _MODULE_LAYER):
        if m := pattern.search(name):
            return int(m.group(1))
    numbers = re.findall(r"\d+", name)
    return int(numbers[0]) if len(numbers) == 1 else None


def resolve_label(
    imported: ImportedFile, run_source: str, *, source: str | None = None, layer: int | None = None
) -> str:
    """The file's label whose explanations belong to the run's latents of ``run_source``
    (``neurons/mlp_neurons.6``): ``source`` if given; else the label equal to ``run_source``; else
    the one label of the run's layer (or of ``layer``); else a lone label naming no layer. Raises
    :class:`ImportFormatError` (one line, with the labels the file holds) when none or several
    fit."""
    labels = imported.labels

    def held() -> str:
        shown = [f"{k} (layer {layer_of(k)})" for k in sorted(labels)[:8]]
        return ", ".join(shown) + (", ..." if len(labels) > 8 else "") or "none"

    if source is not None:
        if source not in labels:
            raise ImportFormatError(
                f"{imported.path}: source {source!r} is not in the file; it holds {held()}"
            )
        return source
    if layer is None and run_source in labels:
        return run_source
    want = layer if layer is not None else layer_of(run_source)
    fits = [k for k in labels if want is not None and layer_of(k) == want]
    if len(fits) == 1:
        return fits[0]
    if len(fits) > 1:
        raise ImportFormatError(
            f"{imported.path}: several of its sources are layer {want} ({', '.join(sorted(fits))})"
            ": choose one with source (--source)"
        )
    if layer is None and len(labels) == 1 and layer_of(next(iter(labels))) is None:
        return next(iter(labels))
    raise ImportFormatError(
        f"{imported.path}: no explanations for {run_source} (layer {want}); the file holds "
        f"{held()}: map one with source (--source) or layer (--layer)"
    )


# -- reading ---------------------------------------------------------------------------------------


def _open_text(path: Path) -> Any:
    if path.name.endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8")
    return path.open(encoding="utf-8")


def _json_records(path: Path) -> Iterator[tuple[str, Any]]:
    """(where, record) of a JSON Lines file, or of a JSON file's array (one JSON value: the
    array's items, a ``{"features": [...]}`` wrapper's items, or the value itself)."""
    name = path.name.removesuffix(".gz")
    try:
        if name.endswith(".jsonl"):
            with _open_text(path) as f:
                for number, line in enumerate(f, 1):
                    if not line.strip():
                        continue
                    try:
                        yield f"{path}:{number}", json.loads(line)
                    except json.JSONDecodeError as exc:
                        yield f"{path}:{number}", _BadJSON(str(exc))
            return
        with _open_text(path) as f:
            data = json.load(f)
    except (OSError, UnicodeDecodeError, EOFError) as exc:
        raise ImportFormatError(f"{path}: cannot read it: {exc}") from None
    except json.JSONDecodeError as exc:
        raise ImportFormatError(f"{path}: not valid JSON: {exc}") from None
    if isinstance(data, dict) and isinstance(data.get("features"), list):
        data = data["features"]
    if isinstance(data, list):
        for i, item in enumerate(data):
            yield f"{path}: item {i}", item
    else:
        yield str(path), data


@dataclass(frozen=True)
class _BadJSON:
    error: str


def _index(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


class _Collector:
    """Adds records to an :class:`ImportedFile`: the first explanation of a latent wins (or the
    one whose kind or model is ``pick``), the others are skipped with a reason."""

    def __init__(self, out: ImportedFile, pick: str | None) -> None:
        self.out, self.pick = out, pick

    def skip(
        self, where: str, reason: str, detail: str = "", latent: tuple[str, int] | None = None
    ) -> None:
        self.out.problems.append(Problem(where, reason, detail, latent))

    def add(
        self, label: str, index: Any, text: Any, where: str, kind: str = "", model: str = ""
    ) -> None:
        idx = _index(index)
        if idx is None:
            self.skip(where, "index: expected a latent index (an integer >= 0)", f"got {index!r}")
            return
        latent = (label, idx)
        if not isinstance(text, str):
            self.skip(where, "explanation: expected a string", f"got {type(text).__name__}", latent)
            return
        text = text.strip()
        if not text:
            self.skip(where, "empty explanation", latent=latent)
            return
        if self.pick is not None and self.pick not in (kind, model):
            self.skip(
                where, f"not made by {self.pick!r}", f"kind {kind!r}, model {model!r}", latent
            )
            return
        table = self.out.labels.setdefault(label, {})
        if idx in table:
            first = table[idx]
            self.skip(
                where, "another explanation of a latent already imported",
                f"first at {first.where}; choose one with pick", latent,
            )  # fmt: skip
            return
        table[idx] = Imported(text, where, kind, model)


def _read_delphi(path: Path, c: _Collector) -> None:
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    found = 0
    for file in files:
        rel = file.parent.relative_to(path).as_posix() if path.is_dir() else "."
        prefix = "" if rel == "." else rel + "/"
        if m := _DELPHI_LATENT.match(file.name):
            found += 1
            label, where = prefix + m["module"], str(file)
            try:
                text = json.loads(file.read_text(encoding="utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                c.skip(
                    where, "expected the explanation as a JSON string (delphi writes "
                    "json.dumps(explanation))", f"not JSON: {exc}", (label, int(m["index"])),
                )  # fmt: skip
                continue
            if isinstance(text, str) and text in DELPHI_PLACEHOLDERS:
                c.skip(where, "delphi's placeholder for a failed explanation", repr(text),
                       (label, int(m["index"])))  # fmt: skip
                continue
            c.add(label, m["index"], text, where, kind="delphi")
        elif m := _DELPHI_MODULE.match(file.name):
            found += 1
            label = prefix + m["module"]
            try:
                data = json.loads(file.read_text(encoding="utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise ImportFormatError(f"{file}: not valid JSON: {exc}") from None
            if not isinstance(data, dict):
                raise ImportFormatError(
                    f"{file}: expected a JSON object of latent index -> explanation, "
                    f"got {type(data).__name__}"
                )
            for key, text in data.items():
                where = f"{file}: key {key!r}"
                if isinstance(text, str) and text in DELPHI_PLACEHOLDERS:
                    idx = _index(key)
                    c.skip(where, "delphi's placeholder for a failed explanation", repr(text),
                           (label, idx) if idx is not None else None)  # fmt: skip
                    continue
                c.add(label, key, text, where, kind="delphi")
    if not found:
        raise ImportFormatError(
            f"{path}: no delphi explanation files in it (<module>_latent<N>.txt holding a JSON "
            "string, or <module>_feature.json)"
        )


def _json_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.name.endswith(_JSON_SUFFIXES))
    if not files:
        raise ImportFormatError(f"{path}: no .json, .jsonl or .jsonl.gz files in it")
    return files


def _read_neuronpedia(path: Path, c: _Collector) -> None:
    for file in _json_files(path):
        for where, rec in _json_records(file):
            if isinstance(rec, _BadJSON):
                c.skip(where, "not valid JSON", rec.error)
                continue
            if not isinstance(rec, Mapping):
                c.skip(where, "expected a JSON object (a Neuronpedia record)",
                       f"got {type(rec).__name__}")  # fmt: skip
                continue
            ours = rec.get("autointerp")
            label = ours.get("source") if isinstance(ours, Mapping) else None
            label = label or rec.get("layer")
            if not isinstance(label, str | int) or isinstance(label, bool) or label == "":
                c.skip(where, "layer: expected a Neuronpedia source id such as '6-res-jb'",
                       f"got {rec.get('layer')!r}")  # fmt: skip
                continue
            label = str(label)
            if "description" in rec:
                kind, model = str(rec.get("typeName", "")), str(rec.get("explanationModelName", ""))
                c.add(label, rec.get("index"), rec["description"], where, kind, model)
            elif isinstance(rec.get("explanations"), list):
                if not rec["explanations"]:
                    idx = _index(rec.get("index"))
                    c.skip(where, "no explanations in the feature record",
                           latent=(label, idx) if idx is not None else None)  # fmt: skip
                for j, e in enumerate(rec["explanations"]):
                    e = e if isinstance(e, Mapping) else {}
                    kind, model = str(e.get("typeName", "")), str(e.get("explanationModelName", ""))
                    at = f"{where} explanation {j}"
                    c.add(label, rec.get("index"), e.get("description"), at, kind, model)
            else:
                keys = ", ".join(sorted(map(str, rec))[:8])
                c.skip(where, "expected 'description' (an explanation export) or 'explanations' "
                       "(a feature record)", f"keys: {keys}")  # fmt: skip


_OUR_FIELDS = ("source", "latent", "explanation")


def _autointerp_rows(file: Path) -> Iterator[tuple[str, Any]]:
    if file.suffix == ".parquet":
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise ImportFormatError(
                f"{file}: reading Parquet needs pyarrow: pip install pyarrow"
            ) from None
        table = pq.read_table(file, columns=["source", "latent", "explainer", "explanation"])
        for i, row in enumerate(table.to_pylist()):
            yield f"{file}: row {i}", row
        return
    yield from _json_records(file)


def _read_autointerp(path: Path, c: _Collector) -> None:
    if path.is_dir():
        files = [
            p for p in (path / "explanations.jsonl", path / "explanations.parquet") if p.is_file()
        ]
        if not files:
            raise ImportFormatError(f"{path}: no explanations.jsonl or explanations.parquet in it")
    else:
        files = [path]
    for file in files[:1]:
        for where, row in _autointerp_rows(file):
            if isinstance(row, _BadJSON):
                c.skip(where, "not valid JSON", row.error)
                continue
            missing = [k for k in _OUR_FIELDS if not isinstance(row, Mapping) or k not in row]
            if missing:
                c.skip(where, f"expected the fields {', '.join(_OUR_FIELDS)}",
                       f"missing {', '.join(missing)}")  # fmt: skip
                continue
            if not isinstance(row["source"], str) or not row["source"]:
                c.skip(where, "source: expected a feature-source key such as 'sae/resid_post.6'",
                       f"got {row['source']!r}")  # fmt: skip
                continue
            c.add(row["source"], row["latent"], row["explanation"], where,
                  str(row.get("explainer") or ""))  # fmt: skip


_READERS = {
    "delphi": _read_delphi,
    "neuronpedia": _read_neuronpedia,
    "autointerp": _read_autointerp,
}


def _kind_of_record(rec: Any) -> str | None:
    if not isinstance(rec, Mapping):
        return None
    if all(k in rec for k in _OUR_FIELDS):
        return "autointerp"
    if {"modelId", "layer", "description", "explanations", "features"} & set(rec):
        return "neuronpedia"
    if rec and all(_index(k) is not None for k in rec):
        return "delphi"
    return None


def detect_format(path: Path) -> str:
    """The format of a file or directory of explanations, from its names and its first record."""
    if not path.exists():
        raise ImportFormatError(f"{path}: no such file or directory")
    if path.is_dir():
        names = [p.name for p in path.rglob("*") if p.is_file()]
        if any(_DELPHI_LATENT.match(n) or _DELPHI_MODULE.match(n) for n in names):
            return "delphi"
        if any(n in ("explanations.jsonl", "explanations.parquet") for n in names):
            return "autointerp"
        files = [
            p for p in sorted(path.rglob("*")) if p.is_file() and p.name.endswith(_JSON_SUFFIXES)
        ]
        if not files:
            raise ImportFormatError(
                f"{path}: no explanation files found (delphi <module>_latent<N>.txt, Neuronpedia "
                ".json/.jsonl(.gz), autointerp explanations.jsonl)"
            )
        path = files[0]
    if _DELPHI_LATENT.match(path.name) or _DELPHI_MODULE.match(path.name):
        return "delphi"
    if path.suffix == ".parquet":
        return "autointerp"
    if not path.name.endswith(_JSON_SUFFIXES):
        raise ImportFormatError(
            f"{path}: cannot tell its format from the name (expected .json, .jsonl, .jsonl.gz, "
            ".parquet or delphi's <module>_latent<N>.txt): set --format"
        )
    first: Any = None
    for _, rec in _json_records(path):
        first = rec
        break
    found = _kind_of_record(first)
    if found is None:
        keys = (
            ", ".join(sorted(map(str, first))[:8])
            if isinstance(first, Mapping)
            else type(first).__name__
        )
        raise ImportFormatError(
            f"{path}: cannot tell its format from its first record ({keys}); expected delphi "
            "({index: explanation}), neuronpedia (modelId, layer, index, description) or "
            "autointerp (source, latent, explanation): set --format"
        )
    return found


def load_explanations(path: Path, fmt: str = "auto", *, pick: str | None = None) -> ImportedFile:
    """Read every explanation of ``path`` (a file or directory) in format ``fmt`` (``auto``:
    :func:`detect_format`); ``pick`` keeps, where a latent has several, the explanations whose
    explainer / typeName or model is ``pick``."""
    path = Path(path)
    if not path.exists():
        raise ImportFormatError(f"{path}: no such file or directory")
    if fmt == "auto":
        fmt = detect_format(path)
    if fmt not in _READERS:
        raise ImportFormatError(f"format {fmt!r}: expected auto, {', '.join(FORMATS)}")
    out = ImportedFile(path, fmt)
    _READERS[fmt](path, _Collector(out, pick))
    return out
