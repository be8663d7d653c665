"""Bring-your-own responses: JSONL / JSON / parquet / llm-dna's responses.json, mapped onto a probe set."""
from __future__ import annotations

import json

import pytest

from hf_dna.errors import ResponsesFileError
from hf_dna.pipeline.backends.responses_file import read_responses_file
from hf_dna.pipeline.probes import load_probe_set

PROBES = load_probe_set("rand-en-4")
ANSWERS = [f"answer number {i}" for i in range(4)]


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_probe_indexes_written_as_strings_or_whole_floats_are_read(tmp_path):
    rows = [{"probe": str(i) if i % 2 else float(i), "response": a} for i, a in enumerate(ANSWERS)]
    assert read_responses_file(str(_jsonl(tmp_path / "r.jsonl", rows)), PROBES).texts == ANSWERS


def test_jsonl_by_probe_index_in_any_order(tmp_path):
    rows = [{"probe": i, "response": ANSWERS[i]} for i in (2, 0, 3, 1)]
    assert read_responses_file(str(_jsonl(tmp_path / "r.jsonl", rows)), PROBES).texts == ANSWERS


def test_llm_dna_responses_json_by_prompt(tmp_path):
    items = [{"prompt": p, "response": a} for p, a in zip(reversed(PROBES.prompts), reversed(ANSWERS))]
    path = tmp_path / "responses.json"
    path.write_text(json.dumps({"model": "x", "items": items}), encoding="utf-8")
    assert read_responses_file(str(path), PROBES).texts == ANSWERS


def test_parquet_with_several_models_is_filtered(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [{"model_id": m, "dir": m.replace("/", "_"), "probe": i, "response": f"{m} {i}"}
            for m in ("org/a", "org/b") for i in range(4)]
    path = tmp_path / "all.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    got = read_responses_file(str(path), PROBES, model_id="org/b")
    assert got.texts == [f"org/b {i}" for i in range(4)] and got.model_id == "org/b"
    with pytest.raises(ResponsesFileError, match="2 models"):
        read_responses_file(str(path), PROBES)
    with pytest.raises(ResponsesFileError, match="no responses for model org/c"):
        read_responses_file(str(path), PROBES, model_id="org/c")


def test_head_subset_skips_rows_beyond_it(tmp_path):
    rows = [{"probe": i, "response": ANSWERS[i]} for i in range(4)]
    subset = PROBES.head(2)
    assert read_responses_file(str(_jsonl(tmp_path / "r.jsonl", rows)), subset).texts == ANSWERS[:2]


@pytest.mark.parametrize("content, message", [
    ("", "no responses"),
    ('{"items": []}', "no responses"),
    ("not json at all", "cannot read"),
    ('[{"prompt": "what is this?", "response": "x"}]', "prompt not in"),
    ('[{"probe": 0, "response": "x"}]', "answers 1 of the 4 probes"),
    ('[{"probe": 9, "response": "x"}]', "outside"),
    ('[{"probe": 0}]', "no 'response'"),
    ('[{"probe": 0, "response": "a"}, {"probe": 0, "response": "b"}]', "answered twice"),
    ('[{"probe": "a", "response": "x"}]', "must be a probe index"),
    ('[{"probe": 1.5, "response": "x"}]', "must be a probe index"),
    ('[{"probe": [0], "response": "x"}]', "must be a probe index"),
])
def test_bad_responses_files(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ResponsesFileError, match=message) as info:
        read_responses_file(str(path), PROBES)
    assert "\n" not in str(info.value)


def test_missing_responses_file(tmp_path):
    with pytest.raises(ResponsesFileError, match="no such responses file"):
        read_responses_file(str(tmp_path / "nope.jsonl"), PROBES)
