"""DNA extraction end to end on tiny models: lineage separation, determinism, responses files."""
from __future__ import annotations

import json

import numpy as np
import pytest

from hf_dna.pipeline.extract import dna_from_texts, extract
from hf_dna.pipeline.responses import GenerationSettings
from hf_dna.pipeline.generate import generate_responses
from hf_dna.pipeline.probes import load_probe_set
from hf_dna.pipeline.record import write_records

PROBES = load_probe_set("rand-en-16")
SETTINGS = GenerationSettings(max_new_tokens=16)
SEEDS = (0, 1, 2, 3, 42)


@pytest.fixture(scope="module")
def tiny_texts(tiny_models, tmp_path_factory) -> dict[str, list[str]]:
    cache = str(tmp_path_factory.mktemp("cache"))
    return {name: generate_responses(str(tiny_models[name]), PROBES, SETTINGS, cache_dir=cache, progress=False).texts
            for name in ("parent", "child", "unrelated")}


def lineage_ratios(texts: dict[str, list[str]], seeds=SEEDS) -> list[float]:
    """d(parent, child) / d(parent, unrelated), Euclidean, for each projection seed."""
    ratios = []
    for seed in seeds:
        dna = {name: dna_from_texts(name, t, PROBES, seed=seed).vector for name, t in texts.items()}
        ratios.append(float(np.linalg.norm(dna["parent"] - dna["child"]) / np.linalg.norm(dna["parent"] - dna["unrelated"])))
    return ratios


def test_child_is_closer_to_parent_than_unrelated_model(tiny_texts):
    ratios = lineage_ratios(tiny_texts)
    print("d(parent,child)/d(parent,unrelated) per seed:", [round(r, 3) for r in ratios])
    assert all(r < 1 for r in ratios), ratios
    assert tiny_texts["parent"] != tiny_texts["child"]  # the child did change


def test_record_fields(tiny_models, tmp_path):
    record = extract(str(tiny_models["parent"]), PROBES, settings=SETTINGS, cache_dir=str(tmp_path), progress=False)
    assert record.model_id == "parent" and record.revision == "local"
    assert (record.dim, record.n_probes, record.probe_hash, record.probe_set) == (128, 16, PROBES.hash, "rand-en-16")
    assert record.encoder == "sentence-transformers/all-MiniLM-L6-v2" and record.encoder_revision
    assert record.generation["max_new_tokens"] == 16 and record.generation["backend"] == "transformers"
    # the audit's relation model reads these; extraction attaches them exactly as reference builds do
    assert set(record.evidence) == {"lex", "emb1024", "probe64", "lexprobe64", "phrases", "static", "weights"}
    assert record.evidence["weights"]["tensors"]  # sketched from the model's safetensors
    assert len(record.evidence["emb1024"]) == 1024
    # static evidence from the model's files: all tiny models share one tokenizer, not one architecture
    gpt2 = extract(str(tiny_models["gpt2"]), PROBES, settings=SETTINGS, cache_dir=str(tmp_path), progress=False)
    assert record.evidence["static"]["architectures"] == ["LlamaForCausalLM"]
    assert gpt2.evidence["static"]["architectures"] == ["GPT2LMHeadModel"]
    assert record.evidence["static"]["tokenizer_vocab_hash"] == gpt2.evidence["static"]["tokenizer_vocab_hash"]
    from hf_dna.pipeline.device import cpu_has_native_bf16

    expected_dtype = "bfloat16" if cpu_has_native_bf16() else "float32"
    assert record.generation["dtype"] == expected_dtype and record.generation["device"] == "cpu"


def test_same_inputs_give_identical_bytes(tiny_models, tmp_path, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1767225600")
    outputs = []
    for run in range(2):  # no cache: the second run generates again
        record = extract(str(tiny_models["child"]), PROBES, settings=SETTINGS, use_cache=False, progress=False)
        outputs.append([write_records([record], tmp_path / f"{run}.{ext}").read_bytes() for ext in ("json", "parquet")])
    assert outputs[0] == outputs[1]
    assert json.loads(outputs[0][0])["created_at"] == "2026-01-01T00:00:00+00:00"


def test_responses_file_gives_the_generated_dna(tiny_models, tiny_texts, tmp_path):
    path = tmp_path / "responses.jsonl"
    path.write_text("".join(json.dumps({"prompt": p, "response": r}) + "\n"
                            for p, r in zip(PROBES.prompts, tiny_texts["parent"])), encoding="utf-8")
    from_file = extract("my-model", PROBES, responses=str(path), progress=False)
    generated = dna_from_texts("parent", tiny_texts["parent"], PROBES)
    assert from_file.dna == generated.dna and from_file.model_id == "my-model"
    assert from_file.generation["backend"] == "responses-file"


def test_text_count_must_match_probes():
    from hf_dna.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match="3 responses for 16 probes"):
        dna_from_texts("m", ["a", "b", "c"], PROBES)
