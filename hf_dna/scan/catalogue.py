"""What a scan covers: model ids from ``--org``, a ``--models`` file or the command line, each pinned to the
revision it will be extracted at (so "already in the output" is decided before anything runs) and sized from
its weight files (so a Ray task can ask for the GPUs it needs)."""
from __future__ import annotations

import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from .. import hub
from ..errors import HfDnaError, InvalidInputError, ModelNotFoundError

#: Hub metadata calls made at once while pinning revisions (one `model_info` per model)
PIN_THREADS = 8
_HUB_ID = re.compile(r"^[\w.-]+(/[\w.-]+)?$")


@dataclass(frozen=True)
class ScanItem:
    """One model to scan: as given, the id and revision its record will carry, and its weights' size."""

    model: str  # as given: a Hub id or a local path
    model_id: str  # the record's model_id (a local dir's name, a .gguf file's stem)
    revision: str  # the Hub commit it is pinned to, or "local"
    weight_bytes: int | None = None  # safetensors (or the chosen .gguf) bytes; None when unknown

    @property
    def local(self) -> bool:
        return self.revision == "local"


def read_models_file(path: str | os.PathLike) -> list[str]:
    """Model ids or paths, one a line; blank lines and ``#`` comments are skipped."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as err:
        raise InvalidInputError(f"cannot read the models file {path}: {err.strerror or err}") from None
    return [line.split("#", 1)[0].strip() for line in lines if line.split("#", 1)[0].strip()]


def model_list(models: list[str] | tuple[str, ...] = (), org: str | None = None,
               models_file: str | os.PathLike | None = None, token: str | None = None) -> list[str]:
    """The models named by exactly one of `org`, `models_file` or `models`, each once, in the given order."""
    given = [bool(models), org is not None, models_file is not None]
    if sum(given) != 1:
        raise InvalidInputError("give exactly one of --org ORG, --models FILE or MODEL ids")
    if org is not None:
        names = hub.list_models(org, token=token)
        if not names:
            raise InvalidInputError(f"{org} has no models on the Hub: nothing to scan")
    elif models_file is not None:
        names = read_models_file(models_file)
        if not names:
            raise InvalidInputError(f"the models file {models_file} names no model")
    else:
        names = list(models)
    return list(dict.fromkeys(names))


def _local_weight_bytes(path: Path, gguf_file: str | None) -> int | None:
    if path.is_file():
        return path.stat().st_size
    if gguf_file and (path / gguf_file).is_file():
        return (path / gguf_file).stat().st_size
    sizes = [p.stat().st_size for p in path.glob("*.safetensors")] or [p.stat().st_size for p in path.glob("*.gguf")]
    return sum(sizes) or None


def hub_weight_bytes(sizes: dict[str, int | None], gguf_file: str | None = None) -> int | None:
    """The bytes of weights a Hub model is loaded from: the chosen .gguf file, else its safetensors files."""
    if gguf_file:
        return sizes.get(gguf_file)
    return sum(size or 0 for name, size in sizes.items() if name.endswith(".safetensors")) or None


def pin(model: str, revision: str | None = None, token: str | None = None, gguf_file: str | None = None) -> ScanItem:
    """A local dir / .gguf file (revision ``local``), or a Hub repo pinned to the commit `revision` points to."""
    path = Path(model).expanduser()
    if path.exists():
        model_id = path.stem if path.is_file() else path.resolve().name
        return ScanItem(model, model_id, "local", _local_weight_bytes(path, gguf_file))
    if not _HUB_ID.match(model) or model.startswith((".", "~")) or model.endswith(".gguf"):
        raise ModelNotFoundError(f"no such model path: {model}")
    sha, sizes = hub.repo_file_sizes(model, revision=revision, token=token)
    return ScanItem(model, model, sha, hub_weight_bytes(sizes, gguf_file))


def plan(models: list[str], revision: str | None = None, token: str | None = None,
         gguf_file: str | None = None) -> tuple[list[ScanItem], dict[str, str]]:
    """Every model pinned (Hub metadata read a few at a time); models that cannot be pinned, with why."""
    def one(model: str) -> ScanItem | str:
        try:
            return pin(model, revision, token, gguf_file)
        except HfDnaError as err:
            return str(err)

    with ThreadPoolExecutor(max_workers=PIN_THREADS) as pool:
        pinned = list(pool.map(one, models))
    items = [p for p in pinned if isinstance(p, ScanItem)]
    failed = {m: p for m, p in zip(models, pinned) if isinstance(p, str)}
    seen: dict[tuple[str, str], str] = {}
    for item in items:
        key = (item.model_id, item.revision)
        if key in seen:
            raise InvalidInputError(f"{seen[key]} and {item.model} would both be recorded as {item.model_id}@"
                                    f"{item.revision}: rename one")
        seen[key] = item.model
    return items, failed
