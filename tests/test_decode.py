"""hf-dna's decoding loop (`hf_dna.pipeline.backends.decode`): greedy tokens equal transformers' `generate()` with
rows leaving the batch at their end, the nucleus equals `TopPLogitsWarper`'s, and sampled answers do not depend on
the batch they were drawn in."""
from __future__ import annotations

import pytest

from hf_dna.pipeline.backends import decode
from hf_dna.pipeline.generate import generate_responses
from hf_dna.pipeline.probes import load_probe_set
from hf_dna.pipeline.responses import GenerationSettings


def _left_padded(rows, pad=0):
    import torch

    width = max(map(len, rows))
    ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows])
    mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
    return ids, mask


# 40: the prefill runs two rows at a time, 20: one, each piece skipping the padding columns of all its rows
@pytest.mark.parametrize("prefill_tokens", [1024, 40, 20])
@pytest.mark.parametrize("name", ["parent", "gpt2"])
def test_greedy_equals_generate_when_rows_end_at_different_steps(tiny_models, name, prefill_tokens, monkeypatch):
    import torch

    monkeypatch.setattr(decode, "PREFILL_TOKENS", prefill_tokens)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_models[name])
    model = AutoModelForCausalLM.from_pretrained(tiny_models[name], dtype=torch.float32).eval()
    prompts = [tok(p)["input_ids"] for p in load_probe_set("rand-en-10").prompts[:6]]
    ids, mask = _left_padded(prompts)
    with torch.inference_mode():
        free = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=16, do_sample=False, pad_token_id=0)
    # a token the greedy answers do emit, declared end-of-sequence: rows then end at different steps
    counts = torch.bincount(free[:, ids.shape[1]:].flatten())
    eos = int(counts.argmax())
    with torch.inference_mode():
        ref = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=16, do_sample=False, pad_token_id=0,
                             eos_token_id=eos)
        ours = decode.decode(model, ids, mask, prompts, max_new_tokens=16, eos_ids=[eos], sampling=decode.Sampling())
    expected = [[t for t in row[ids.shape[1]:].tolist()] for row in ref]
    expected = [row[:row.index(eos)] if eos in row else row for row in expected]
    assert ours == expected
    lengths = {len(row) for row in ours}
    assert len(lengths) > 1 and min(lengths) < 16  # rows did leave the batch early


def test_nucleus_is_the_one_of_transformers_top_p():
    import torch
    from transformers.generation.logits_process import TopPLogitsWarper

    generator = torch.Generator().manual_seed(0)
    for trial in range(200):
        scale = [0.3, 1.0, 3.0, 8.0][trial % 4]
        logits = torch.randn(1, 500, generator=generator) * scale
        top_p = [0.5, 0.9, 0.95][trial % 3]
        kept_hf = int(torch.isfinite(TopPLogitsWarper(top_p)(None, logits.clone())).sum())
        ours = decode.nucleus_size(logits.softmax(-1)[0].sort(descending=True).values, top_p)
        assert ours == kept_hf, (trial, ours, kept_hf)
    assert decode.nucleus_size(torch.tensor([0.97, 0.02, 0.01]), 0.9) == 1
    # after transformers' default top-k (50, applied before top-p), as the loop draws
    from transformers.generation.logits_process import TopKLogitsWarper

    for trial in range(100):
        logits = torch.randn(1, 3000, generator=generator) * [0.3, 1.0, 3.0][trial % 3]
        kept_hf = int(torch.isfinite(TopPLogitsWarper(0.9)(None, TopKLogitsWarper(50)(None, logits.clone()))).sum())
        top = logits.softmax(-1).topk(50).values[0]
        assert decode.nucleus_size(top / top.sum(), 0.9) == kept_hf
    assert decode.nucleus_size(torch.tensor([0.5, 0.3, 0.2]), 1.0) == 3


def test_sampled_draws_follow_the_nucleus_distribution():
    import torch

    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    sampling = decode.Sampling(temperature=1.0, top_p=0.9, seed=1)
    draws = torch.cat([decode._next_tokens(logits, sampling, [7], step) for step in range(4000)])
    freq = torch.bincount(draws, minlength=4).float() / len(draws)
    # nucleus {0, 1, 2} (0.95 >= 0.9), renormalised: 0.526, 0.316, 0.158; token 3 never
    assert freq[3] == 0
    assert torch.allclose(freq[:3], torch.tensor([0.5, 0.3, 0.15]) / 0.95, atol=0.03)


def test_sampled_answers_do_not_depend_on_the_batch(tiny_models):
    probes = load_probe_set("rand-en-10")

    def run(batch_size, seed=42):
        settings = GenerationSettings.paper(max_new_tokens=12, batch_size=batch_size, dtype="float32", seed=seed)
        return generate_responses(str(tiny_models["parent"]), probes, settings, progress=False, use_cache=False)

    four, one = run(4), run(1)
    assert four.texts == one.texts and len(set(four.texts)) > 1
    assert run(4, seed=43).texts != four.texts
    assert four.generation["decoding"].endswith("coupled-top50-nucleus")


def test_models_the_loop_cannot_drive_use_generate(tiny_models):
    from hf_dna.pipeline.backends.transformers import TransformersGenerator, resolve_source

    class NoCache:
        def forward(self, input_ids, attention_mask=None):
            return None

    assert not decode.supports(NoCache())
    generator = TransformersGenerator(resolve_source(str(tiny_models["parent"])), GenerationSettings(sampling=True))
    assert generator.own_decoding
    generator.config.auto_map = {"AutoModelForCausalLM": "custom.Model"}
    del generator.own_decoding
    assert not generator.own_decoding and generator.decoding == "until-eos,skip-special,strip"


@pytest.mark.slow
@pytest.mark.parametrize("fixture", ["smollm2_gguf", "gemma_gguf"])
def test_real_models_greedy_equals_generate(fixture, request):
    """The shipped SmolLM2 (Llama layers) and gemma-3-270m (sliding-window and global layers) GGUFs: the loop's
    greedy answers are generate()'s, with the prefill split into row chunks where the cache allows it."""
    import torch

    from hf_dna.pipeline.backends.transformers import TransformersGenerator, resolve_source

    generator = TransformersGenerator(resolve_source(str(request.getfixturevalue(fixture))),
                                      GenerationSettings(max_new_tokens=12, dtype="float32", chat_template="off"))
    prompts = generator.prompt_ids(load_probe_set("paper600:6").prompts)
    ids, mask = _left_padded(prompts, pad=generator.tokenizer.pad_token_id or 0)
    eos = generator._eos_ids()
    with torch.inference_mode():
        ref = generator.model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=12, do_sample=False,
                                       pad_token_id=generator.tokenizer.pad_token_id or 0, eos_token_id=eos)
        ours = decode.decode(generator.model, ids, mask, prompts, max_new_tokens=12, eos_ids=eos,
                             sampling=decode.Sampling())
    expected = []
    for row in ref[:, ids.shape[1]:].tolist():
        cut = next((i for i, t in enumerate(row) if t in eos), len(row))
        expected.append(row[:cut])
    assert ours == expected and any(ours)


def test_models_asked_the_same_prompt_share_the_sampling_noise():
    """Two close distributions draw the same token far more often than independent draws would: the noise is fixed
    by (seed, step, token id), not by the order of the candidates."""
    import torch

    generator = torch.Generator().manual_seed(3)
    sampling = decode.Sampling(temperature=1.0, top_p=0.9, seed=1)
    same = 0
    for step in range(500):
        base = torch.randn(1, 200, generator=generator) * 2
        close = base + 0.3 * torch.randn(1, 200, generator=generator)
        same += int(decode._next_tokens(base, sampling, [11], step) == decode._next_tokens(close, sampling, [11], step))
    independent = sum(
        int(decode._next_tokens(torch.randn(1, 200, generator=generator) * 2, sampling, [11], step) ==
            decode._next_tokens(torch.randn(1, 200, generator=generator) * 2, sampling, [12], step))
        for step in range(500))
    assert same > 350 and independent < 100
