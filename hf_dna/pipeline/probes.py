"""Probe sets: named, versioned prompt lists with a sha256 that pins them.

A probe set is given by a *spec* string:

- a built-in name: ``paper600``, ``chat-rand-zh100`` (the LLM DNA authors' sets);
- ``rand-en-<n>`` or ``rand-en-<n>-s<seed>``: seeded random English word prompts (same seed, same prompts on
  every platform);
- any of the above followed by ``:<k>`` for its first k probes (``paper600:60``);
- a path to a user file: ``.jsonl`` (``prompt`` or ``probe``+``prompt`` per line), ``.json`` (a list of
  strings or of such objects) or ``.txt`` (one prompt per line).
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

import numpy as np

from ..errors import ProbeSetNotFoundError

_DATA = "data/probes"
_BUILTIN = {
    "paper600": ("paper600.jsonl", "600 English prompts (SQuAD, CommonsenseQA, HellaSwag, WinoGrande, ARC, MMLU)"),
    "chat-rand-zh100": ("chat-rand-zh100.jsonl", "100 random-text prompts in classical Chinese"),
}
_ATTRIBUTION = "LLM DNA authors, github.com/JerryLife/dna-web (MIT); Wu et al., arXiv 2509.24496"
_RAND_RE = re.compile(r"^rand-en-(\d+)(?:-s(\d+))?$")
RAND_EN_VERSION = "rand-en-v1"


@dataclass(frozen=True)
class ProbeSet:
    """An ordered, immutable list of prompts with a name and a content hash."""

    name: str
    prompts: tuple[str, ...]
    description: str = ""
    source: str = ""

    def __post_init__(self) -> None:
        if not self.prompts:
            raise ProbeSetNotFoundError(f"probe set {self.name!r} has no prompts")

    def __len__(self) -> int:
        return len(self.prompts)

    @property
    def hash(self) -> str:
        """sha256 over the JSON list of prompts: equal hashes mean the very same probes in the same order."""
        return probe_hash(self.prompts)

    def head(self, k: int) -> ProbeSet:
        """The first `k` probes, named ``<name>:<k>`` (``paper600:100`` -> ``paper600:50``)."""
        if not 0 < k <= len(self.prompts):
            raise ProbeSetNotFoundError(f"probe set {self.name!r} has {len(self.prompts)} probes; cannot take {k}")
        if k == len(self.prompts):
            return self
        return ProbeSet(f"{self.base_name}:{k}", self.prompts[:k], self.description, self.source)

    def tail(self, k: int) -> ProbeSet:
        """The probes after the first `k`, named ``<name>[<k>:]``: what is left to ask after `head(k)`."""
        if not 0 < k < len(self.prompts):
            raise ProbeSetNotFoundError(f"probe set {self.name!r} has {len(self.prompts)} probes; no tail after {k}")
        return ProbeSet(f"{self.name}[{k}:]", self.prompts[k:], self.description, self.source)

    @property
    def base_name(self) -> str:
        """The name without a ``:<k>`` head count."""
        return re.sub(r":\d+$", "", self.name)


def probe_hash(prompts: tuple[str, ...] | list[str]) -> str:
    """The sha256 hex digest of the prompts as a compact JSON list (UTF-8)."""
    blob = json.dumps(list(prompts), ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()


def builtin_names() -> list[str]:
    """Names of the probe sets shipped in the package."""
    return list(_BUILTIN)


def load_probe_set(spec: str) -> ProbeSet:
    """Resolve a probe-set spec (see module doc) to a `ProbeSet`."""
    spec = spec.strip()
    base, _, count = spec.rpartition(":") if re.search(r":\d+$", spec) else (spec, "", "")
    probe_set = _load_base(base)
    return probe_set.head(int(count)) if count else probe_set


def _load_base(spec: str) -> ProbeSet:
    if spec in _BUILTIN:
        return _builtin(spec)
    match = _RAND_RE.match(spec)
    if match:
        n, seed = int(match[1]), int(match[2] or 0)
        return ProbeSet(spec, random_english_prompts(n, seed), f"{n} seeded random English word prompts (seed {seed})",
                        RAND_EN_VERSION)
    path = Path(spec).expanduser()
    if path.is_file():
        return ProbeSet(path.stem, tuple(read_prompts_file(path)), f"prompts from {path.name}", str(path))
    known = ", ".join([*_BUILTIN, "rand-en-<n>[-s<seed>]"])
    raise ProbeSetNotFoundError(f"no probe set or file named {spec!r} (built-in: {known}; or a .jsonl/.json/.txt path)")


@cache
def _builtin(name: str) -> ProbeSet:
    filename, description = _BUILTIN[name]
    text = resources.files("hf_dna").joinpath(f"{_DATA}/{filename}").read_text(encoding="utf-8")
    prompts = _prompts_from_records([json.loads(line) for line in text.splitlines() if line.strip()], name)
    return ProbeSet(name, tuple(prompts), description, _ATTRIBUTION)


def read_prompts_file(path: Path) -> list[str]:
    """Read prompts from a .jsonl, .json or .txt file, in order (a ``probe`` index, when present, sets the order)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ProbeSetNotFoundError(f"cannot read probe file {path}: {err}") from None
    try:
        if path.suffix == ".jsonl":
            records = [json.loads(line) for line in text.splitlines() if line.strip()]
        elif path.suffix == ".json":
            records = json.loads(text)
        else:
            records = [line for line in text.splitlines() if line.strip()]
    except json.JSONDecodeError as err:
        raise ProbeSetNotFoundError(f"probe file {path} is not valid JSON: {err}") from None
    if not isinstance(records, list) or not records:
        raise ProbeSetNotFoundError(f"probe file {path} holds no prompts")
    return _prompts_from_records(records, str(path))


def _prompts_from_records(records: list, where: str) -> list[str]:
    if all(isinstance(r, str) for r in records):
        return list(records)
    if not all(isinstance(r, dict) and isinstance(r.get("prompt"), str) for r in records):
        raise ProbeSetNotFoundError(f"{where}: every probe must be a string or an object with a 'prompt' string")
    if all("probe" in r for r in records):
        records = sorted(records, key=lambda r: int(r["probe"]))
    return [r["prompt"] for r in records]


@cache
def _words() -> tuple[str, ...]:
    text = resources.files("hf_dna").joinpath(f"{_DATA}/words-en.txt").read_text(encoding="utf-8")
    return tuple(text.split())


def random_english_prompts(n: int, seed: int = 0, min_words: int = 8, max_words: int = 24) -> list[str]:
    """`n` prompts of random English words, reproducible on every platform (numpy PCG64, shipped word list)."""
    if n <= 0:
        raise ProbeSetNotFoundError("rand-en needs a positive probe count")
    words = _words()
    rng = np.random.Generator(np.random.PCG64(seed))
    lengths = rng.integers(min_words, max_words + 1, size=n)
    prompts = []
    for length in lengths:
        picks = rng.integers(0, len(words), size=int(length))
        sentence = " ".join(words[i] for i in picks)
        prompts.append(sentence[0].upper() + sentence[1:] + ".")
    return prompts
