"""Response generation (transformers backend), the response cache, and bad model inputs."""
from __future__ import annotations

import json

import numpy as np
import pytest

from hf_dna import errors
from hf_dna.pipeline.responses import GenerationSettings
from hf_dna.pipeline.backends.transformers import TransformersGenerator
from hf_dna.pipeline.device import cpu_threads
from hf_dna.pipeline.generate import generate_responses, plan_batches
from hf_dna.pipeline.probes import load_probe_set

GREEDY = GenerationSettings(max_new_tokens=12, batch_size=4, dtype="float32")


@pytest.fixture(scope="module")
def probes():
    return load_probe_set("rand-en-10")


@pytest.fixture(scope="module")
def parent_texts(tiny_models, probes, tmp_path_factory):
    return generate_responses(str(tiny_models["parent"]), probes, GREEDY, progress=False,
                              cache_dir=str(tmp_path_factory.mktemp("cache"))).texts


def test_settings_paper_and_dict():
    paper = GenerationSettings.paper()
    assert (paper.sampling, paper.temperature, paper.top_p, paper.seed, paper.chat_template) == (True, 0.7, 0.9, 42, "off")
    assert GenerationSettings().to_dict()["sampling"] is False
    assert GenerationSettings.paper(max_new_tokens=8).max_new_tokens == 8
    with pytest.raises(errors.InvalidInputError):
        GenerationSettings(chat_template="sometimes")


def test_plan_batches_groups_similar_lengths_and_covers_every_probe():
    lengths = [3, 9, 1, 9, 5, 2, 7]
    batches = plan_batches(lengths, 3)
    assert sorted(i for b in batches for i in b) == list(range(7))
    assert [len(b) for b in batches] == [3, 3, 1]
    assert batches[0] == [1, 3, 6]  # longest first, ties in probe order


def test_cpu_threads_rule(monkeypatch):
    from hf_dna.pipeline import device

    monkeypatch.delenv("HF_DNA_NUM_THREADS", raising=False)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    monkeypatch.setattr(device, "physical_cores", lambda: 2)
    monkeypatch.setattr(device, "threads_pay_off", lambda n: False)  # hyper-thread siblings: 2 threads no faster
    assert cpu_threads() == 1
    monkeypatch.setattr(device, "threads_pay_off", lambda n: True)  # two real cores: measured 2.1x
    assert cpu_threads() == 2
    monkeypatch.setattr(device, "physical_cores", lambda: 16)
    assert cpu_threads() == 16  # many cores: no measurement
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    assert cpu_threads() == 4  # shared by the processes of an accelerate launch
    monkeypatch.setenv("HF_DNA_NUM_THREADS", "3")
    assert cpu_threads() == 3
    monkeypatch.setenv("HF_DNA_NUM_THREADS", "many")
    with pytest.raises(errors.InvalidInputError):
        cpu_threads()


def test_projection_blocks_are_the_same_drawn_by_any_number_of_threads(monkeypatch):
    from hf_dna.pipeline.dna import project, projection_blocks

    def serial(seed, n, rows, dim):  # the documented definition: PCG64(SeedSequence([seed, probe])) normals / sqrt(dim)
        return [np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, p]))).standard_normal(
            (rows, dim), dtype=np.float32) * np.float32(1 / np.sqrt(dim)) for p in range(n)]

    emb = np.random.default_rng(0).standard_normal((23, 16)).astype(np.float32)
    results = {}
    for threads in ("1", "3"):
        monkeypatch.setenv("HF_DNA_NUM_THREADS", threads)
        blocks = list(projection_blocks(7, 23, 16, 1024))
        assert len(blocks) == 23
        assert all(np.array_equal(a, b) for a, b in zip(blocks, serial(7, 23, 16, 1024)))  # in probe order
        results[threads] = (project(emb, dim=1024, seed=7), project(emb, dim=128, seed=7))
    assert all(np.array_equal(a, b) for a, b in zip(results["1"], results["3"]))


def test_physical_cores_and_the_thread_measurement_on_this_machine(monkeypatch):
    from hf_dna.pipeline import device

    cores = device.physical_cores()
    assert 1 <= cores <= len(device.usable_cpus())
    monkeypatch.setattr(device, "usable_cpus", lambda: {0})
    assert device.physical_cores() == 1
    assert isinstance(device.threads_pay_off(2), bool)  # runs the real matmul measurement


@pytest.mark.parametrize("cap", [{"ATEN_CPU_CAPABILITY": "avx2"}, {"ONEDNN_MAX_CPU_ISA": "AVX2"}])
def test_an_isa_cap_makes_auto_float32(monkeypatch, cap):
    """Under an ISA cap torch emulates bfloat16 (~6x slower than float32, bench/RESULTS.md), so auto picks float32."""
    from hf_dna.pipeline.device import cpu_has_native_bf16, resolve_dtype

    monkeypatch.delenv("ATEN_CPU_CAPABILITY", raising=False)
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    uncapped = cpu_has_native_bf16()  # the CPU's own answer
    for name, value in cap.items():
        monkeypatch.setenv(name, value)
    assert resolve_dtype("auto", "cpu") == "float32"
    # a cap that still allows native bf16 leaves the CPU's own answer
    monkeypatch.delenv("ATEN_CPU_CAPABILITY", raising=False)
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_AMX")
    assert cpu_has_native_bf16() == uncapped


def test_greedy_batched_equals_one_at_a_time_in_probe_order(tiny_models, probes, parent_texts, tmp_path):
    # batch-invariance is exact in float32; bfloat16 (the CPU default where the CPU has native bf16) rounds differently
    # with different padding, as on GPUs
    single = generate_responses(str(tiny_models["parent"]), probes,
                                GenerationSettings(max_new_tokens=12, batch_size=1, dtype="float32"),
                                progress=False, use_cache=False)
    assert single.texts == parent_texts
    assert len(parent_texts) == len(probes) and len(set(parent_texts)) > 1
    assert single.generation["backend"] == "transformers" and single.generation["chat_template_used"] is False


def test_response_excludes_prompt_and_special_tokens(tiny_models, probes, parent_texts):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = tiny_models["parent"]
    tok, model = AutoTokenizer.from_pretrained(path), AutoModelForCausalLM.from_pretrained(path)
    ids = tok(probes.prompts[0], return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        out = model.generate(ids, max_new_tokens=12, do_sample=False, pad_token_id=0)
    assert parent_texts[0] == tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True)
    assert "<|endoftext|>" not in "".join(parent_texts)


def test_seeded_sampling_is_reproducible(tiny_models, probes):
    def run(seed):
        settings = GenerationSettings(max_new_tokens=12, batch_size=4, sampling=True, temperature=1.0, seed=seed)
        return generate_responses(str(tiny_models["gpt2"]), probes, settings, progress=False, use_cache=False).texts

    first = run(7)
    assert run(7) == first
    assert run(8) != first


def test_chat_template_on_without_template_is_an_error(tiny_models, probes):
    with pytest.raises(errors.InvalidInputError, match="no chat template"):
        generate_responses(str(tiny_models["parent"]), probes, GenerationSettings(chat_template="on"), use_cache=False)


_GENERATE_BATCH = TransformersGenerator.generate_batch


class Interrupted(Exception):
    """Stands for Ctrl-C / a killed process in the middle of a run."""


def _count_batches(monkeypatch, fail_after: int | None = None) -> list[int]:
    calls: list[int] = []
    original = _GENERATE_BATCH

    def counting(self, ids, batch_no):
        if fail_after is not None and len(calls) == fail_after:
            raise Interrupted
        calls.append(batch_no)
        return original(self, ids, batch_no)

    monkeypatch.setattr(TransformersGenerator, "generate_batch", counting)
    return calls


def test_interrupted_run_resumes_from_cache(tiny_models, probes, parent_texts, tmp_path, monkeypatch):
    model, cache = str(tiny_models["parent"]), str(tmp_path)
    first = _count_batches(monkeypatch, fail_after=1)
    with pytest.raises(Interrupted):
        generate_responses(model, probes, GREEDY, cache_dir=cache, progress=False)
    assert first == [0]
    second = _count_batches(monkeypatch)
    resumed = generate_responses(model, probes, GREEDY, cache_dir=cache, progress=False)
    assert second == [1, 2]  # 10 probes in batches of 4: only the two unfinished batches are generated
    assert resumed.texts == parent_texts
    third = _count_batches(monkeypatch)
    assert generate_responses(model, probes, GREEDY, cache_dir=cache, progress=False).texts == parent_texts
    assert third == []


def test_cache_is_keyed_by_settings_and_weights(tiny_models, probes, tmp_path, monkeypatch):
    import shutil

    model = tmp_path / "model"
    shutil.copytree(tiny_models["parent"], model)
    generate_responses(str(model), probes, GREEDY, cache_dir=str(tmp_path / "c"), progress=False)
    calls = _count_batches(monkeypatch)
    generate_responses(str(model), probes, GenerationSettings(max_new_tokens=5, batch_size=4),
                       cache_dir=str(tmp_path / "c"), progress=False)
    assert len(calls) == 3
    shutil.copy(tiny_models["unrelated"] / "model.safetensors", model / "model.safetensors")  # new weights
    generate_responses(str(model), probes, GREEDY, cache_dir=str(tmp_path / "c"), progress=False)
    assert len(calls) == 6
    keys = [json.loads(p.read_text())["generation"]["max_new_tokens"] for p in (tmp_path / "c").rglob("key.json")]
    assert sorted(keys) == [5, 12, 12]


# ------------------------------------------------------------------------------------------------ bad input
def test_missing_local_path(probes):
    with pytest.raises(errors.ModelNotFoundError, match="no such model path"):
        generate_responses("./no/such/model", probes, use_cache=False)


def test_missing_hub_repo_offline(probes, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(errors.HfDnaError, match="no-such-org/no-such-model"):
        generate_responses("no-such-org/no-such-model", probes, use_cache=False)


@pytest.mark.parametrize("case, error", [
    ("bert", errors.NotACausalLMError),
    ("remote", errors.RemoteCodeNotAllowedError),
    ("corrupt_gguf", errors.CorruptModelFileError),
    ("empty", errors.ModelLoadError),
])
def test_bad_model_inputs(bad_model_dirs, probes, case, error):
    with pytest.raises(error) as info:
        generate_responses(str(bad_model_dirs[case]), probes, use_cache=False)
    assert "\n" not in str(info.value)


def test_quantised_loading_and_cuda_device_need_cuda(tiny_models, probes):
    import torch

    with pytest.raises(errors.InvalidInputError, match="CUDA"):
        generate_responses(str(tiny_models["parent"]), probes, GenerationSettings(load_in="4bit", device="cpu"),
                           use_cache=False)
    if not torch.cuda.is_available():
        with pytest.raises(errors.InvalidInputError, match="CUDA is not available"):
            generate_responses(str(tiny_models["parent"]), probes, GenerationSettings(device="cuda"), use_cache=False)


def test_out_of_memory_is_a_typed_error(tiny_models, probes, monkeypatch):
    import torch

    def oom(self, *args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr("transformers.LlamaForCausalLM.forward", oom)
    with pytest.raises(errors.OutOfMemoryError, match="smaller --batch-size"):
        generate_responses(str(tiny_models["parent"]), probes, GREEDY, use_cache=False, progress=False)


def test_prompts_longer_than_the_context_are_cut(tiny_models):
    from hf_dna.pipeline.backends.transformers import resolve_source
    from hf_dna.pipeline.probes import ProbeSet

    huge = ProbeSet("huge", (" ".join(["The river runs through the old town"] * 60),))
    settings = GenerationSettings(max_new_tokens=8)
    generator = TransformersGenerator(resolve_source(str(tiny_models["parent"])), settings)
    full = len(generator.tokenizer(huge.prompts[0])["input_ids"])
    cut = generator.prompt_ids(huge.prompts)[0]
    assert full > 256 and len(cut) == 256 - 8  # the tiny Llama has 256 positions
    texts = generate_responses(str(tiny_models["parent"]), huge, settings, use_cache=False, progress=False).texts
    assert len(texts) == 1 and texts[0]


def test_model_is_released_before_encoding_and_reloads_the_same(tiny_models, probes, parent_texts, monkeypatch):
    """generate_responses frees the LM (a reference cycle otherwise kept until the next GC) before returning, so the
    sentence encoder's peak does not come on top of it; a released generator reloads and answers the same."""
    import gc
    import weakref

    from hf_dna.pipeline.generate import ResponseJob

    released = []
    original = TransformersGenerator.release

    def spy(self):
        model = weakref.ref(self._model) if self._model is not None else None
        original(self)
        released.append(model)

    monkeypatch.setattr(TransformersGenerator, "release", spy)
    assert generate_responses(str(tiny_models["parent"]), probes, GREEDY, progress=False, use_cache=False).texts == parent_texts
    assert len(released) == 1 and released[0] is not None
    gc.collect()
    assert released[0]() is None  # nothing else holds the model
    job = ResponseJob(str(tiny_models["parent"]), probes, GREEDY, use_cache=False)
    first = job.run(list(range(len(job.batches))), progress=False)
    job.generator.release()
    assert job.generator._model is None
    job.generator.release()  # idempotent
    assert job.run(list(range(len(job.batches))), progress=False) == first


def test_batch_size_auto_is_32_on_cpu_with_the_explicit_cache_key(tiny_models, probes):
    from hf_dna.pipeline.backends.transformers import resolve_source
    from hf_dna.pipeline.generate import ResponseJob

    source = resolve_source(str(tiny_models["parent"]))
    auto = TransformersGenerator(source, GenerationSettings(max_new_tokens=12, device="cpu"))
    explicit = TransformersGenerator(source, GenerationSettings(max_new_tokens=12, device="cpu", batch_size=32))
    assert auto.batch_size == 32 and auto.generation_info() == explicit.generation_info()
    many = load_probe_set("rand-en-40")
    assert [len(b) for b in ResponseJob("m", many, generator=auto, use_cache=False).batches] == [32, 8]
    with pytest.raises(errors.InvalidInputError, match="positive"):
        GenerationSettings(batch_size=0)


def test_gpu_batch_size_is_sized_from_memory():
    from hf_dna.pipeline.device import auto_batch_size

    gib = 2**30
    row = 6 * 2**20  # SmolLM2-135M in bfloat16: 23 KB of KV cache a token, 288 tokens
    assert auto_batch_size("cuda", gpu_memory=141 * gib, weight_bytes=gib // 4, cache_bytes_per_row=row) == 512
    # a 7B model in bfloat16 on a 24 GiB card: the weights take more than the share, the floor stays
    assert auto_batch_size("cuda", gpu_memory=24 * gib, weight_bytes=14 * gib, cache_bytes_per_row=64 * 2**20) == 32
    middle = auto_batch_size("cuda", gpu_memory=80 * gib, weight_bytes=16 * gib, cache_bytes_per_row=40 * 2**20)
    assert middle == (20 * gib - 16 * gib) // (40 * 2**20) // 32 * 32 == 96
    assert auto_batch_size("cpu", gpu_memory=141 * gib, cache_bytes_per_row=row) == 32
    # a card other processes fill: only what is free after the weights counts
    shared = auto_batch_size("cuda", gpu_memory=80 * gib, weight_bytes=gib, cache_bytes_per_row=40 * 2**20,
                             free_memory=6 * gib)
    assert shared == int((0.9 * 6 * gib - gib) // (40 * 2**20)) // 32 * 32 == 96


def test_kv_cache_and_weight_bytes_of_a_config(tiny_models):
    from transformers import AutoConfig

    from hf_dna.pipeline.backends.transformers import _cache_bytes_per_token, _parameter_bytes

    config = AutoConfig.from_pretrained(tiny_models["parent"])  # 2 layers, 2 KV heads of 16 dims
    assert _cache_bytes_per_token(config, "float32") == 2 * 2 * 2 * 16 * 4
    assert _cache_bytes_per_token(config, "bfloat16") == 2 * 2 * 2 * 16 * 2
    from transformers import AutoModelForCausalLM

    params = sum(p.numel() for p in AutoModelForCausalLM.from_pretrained(tiny_models["parent"]).parameters())
    assert _parameter_bytes(config, "bfloat16") == 2 * params


def test_the_encoder_runs_where_the_gpu_is_else_on_cpu(monkeypatch):
    import torch

    from hf_dna.pipeline import extract
    from hf_dna.pipeline.device import encoder_device

    where = encoder_device()
    assert where.startswith("cuda") if torch.cuda.is_available() else where is None
    asked = {}
    monkeypatch.setattr(extract, "load_encoder", lambda name, device=None: asked.setdefault("device", device))
    monkeypatch.setattr(extract, "encoder_device", lambda: "cuda:0")
    extract._encoder(None)
    assert asked["device"] == "cuda:0"
