"""Bring-your-own responses: a file of one response per probe, mapped onto a probe set.

Accepted: JSONL/JSON/parquet rows with ``probe`` (index) or ``prompt``, plus ``response`` (a ``model_id`` column
selects one model of a multi-model file, e.g. ``paper600.parquet``), and llm-dna's ``responses.json``
(``{"items": [{"prompt", "response"}]}``).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ...errors import ResponsesFileError, first_line
from ..probes import ProbeSet
from ..responses import Responses


def read_responses_file(path: str, probe_set: ProbeSet, model_id: str | None = None) -> Responses:
    """Responses from a file: JSONL/JSON/parquet rows with ``probe`` (index) or ``prompt``, plus ``response``;
    or llm-dna's ``responses.json`` (``{"items": [{"prompt", "response"}]}``). Rows are mapped onto `probe_set`
    by index or prompt text. A file holding several models (a ``model_id`` column) needs `model_id`.

    Rows for probes outside `probe_set` are an error, except when `probe_set` is a head subset (``paper600:60``),
    where they are skipped.
    """
    rows = _select_model(read_rows(Path(path), model_id), model_id, path)
    if not rows:
        raise ResponsesFileError(f"{path} holds no responses")
    texts = map_onto_probes(rows, probe_set, path)
    label = model_id or rows[0].get("model_id") or Path(path).stem
    return Responses(str(label), "local", texts, {"backend": "responses-file", "source": Path(path).name})


def read_rows(path: Path, model_id: str | None = None) -> list[dict[str, Any]]:
    if not path.is_file():
        raise ResponsesFileError(f"no such responses file: {path}")
    try:
        if path.suffix == ".parquet":
            return _read_parquet(path, model_id)
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".jsonl":
            return [json.loads(line) for line in text.splitlines() if line.strip()]
        data = json.loads(text) if text.strip() else []
    except Exception as err:  # json / unicode / arrow errors all mean "not a responses file"
        raise ResponsesFileError(f"cannot read responses from {path}: {first_line(err)}") from None
    if isinstance(data, dict):
        data = data.get("items", data.get("responses"))
    if not isinstance(data, list):
        raise ResponsesFileError(f"{path}: expected a list of rows or an object with 'items'")
    return data


def _read_parquet(path: Path, model_id: str | None) -> list[dict[str, Any]]:
    """All rows, or with `model_id` only that model's (a pushed-down filter: multi-model files are large)."""
    import pyarrow.parquet as pq

    names = pq.read_schema(path).names
    if model_id is not None and "model_id" in names:
        filters = [[("model_id", "=", model_id)]] + ([[("dir", "=", model_id)]] if "dir" in names else [])
        rows = pq.read_table(path, filters=filters).to_pylist()
        if rows:
            return rows
    return pq.read_table(path).to_pylist()


def _select_model(rows: list[Any], model_id: str | None, path: str) -> list[dict[str, Any]]:
    if not all(isinstance(r, dict) for r in rows):
        raise ResponsesFileError(f"{path}: every row must be an object with 'probe' or 'prompt' and 'response'")
    models = {r.get("model_id") for r in rows} - {None}
    if len(models) <= 1:
        return rows
    if model_id is None:
        raise ResponsesFileError(f"{path} holds responses of {len(models)} models: name one (model_id)")
    chosen = [r for r in rows if model_id in (r.get("model_id"), r.get("dir"))]
    if not chosen:
        raise ResponsesFileError(f"{path} has no responses for model {model_id}")
    return chosen


def map_onto_probes(rows: list[dict[str, Any]], probe_set: ProbeSet, path: str) -> list[str]:
    n = len(probe_set)
    subset = ":" in probe_set.name
    by_prompt: dict[str, list[int]] = {}
    for i, prompt in enumerate(probe_set.prompts):
        by_prompt.setdefault(prompt, []).append(i)
    texts: dict[int, str] = {}
    for row in rows:
        if "response" not in row:
            raise ResponsesFileError(f"{path}: a row has no 'response' field")
        if row.get("probe") is not None:
            index = _probe_index(row["probe"], path)
            if not 0 <= index < n:
                if subset:
                    continue
                raise ResponsesFileError(f"{path}: probe index {index} is outside {probe_set.name} ({n} probes)")
        elif isinstance(row.get("prompt"), str):
            free = [i for i in by_prompt.get(row["prompt"], []) if i not in texts]
            if not free:
                if subset and row["prompt"] not in by_prompt:
                    continue
                raise ResponsesFileError(f"{path}: prompt not in {probe_set.name} (or repeated): {row['prompt'][:60]!r}")
            index = free[0]
        else:
            raise ResponsesFileError(f"{path}: a row has neither 'probe' nor 'prompt'")
        if index in texts:
            raise ResponsesFileError(f"{path}: probe {index} is answered twice")
        texts[index] = "" if row["response"] is None else str(row["response"])
    missing = [i for i in range(n) if i not in texts]
    if missing:
        raise ResponsesFileError(f"{path} answers {n - len(missing)} of the {n} probes of {probe_set.name}; "
                                 f"first missing: probe {missing[0]} ({probe_set.prompts[missing[0]][:60]!r})")
    return [texts[i] for i in range(n)]


def _probe_index(value: Any, path: str) -> int:
    """A row's 'probe' as an index: an integer (or a string or float of one), else a `ResponsesFileError`."""
    try:
        index = int(value)
        if isinstance(value, bool) or index != float(value):
            raise ValueError
    except (TypeError, ValueError):
        raise ResponsesFileError(f"{path}: 'probe' must be a probe index (an integer), not {value!r}") from None
    return index
