"""Models from a Hub repo (the local Hub server): snapshot of safetensors/tokenizer files only, revision = sha."""
from __future__ import annotations

import re

import pytest

from hf_dna import errors
from hf_dna.pipeline.responses import GenerationSettings
from hf_dna.pipeline.generate import generate_responses
from hf_dna.pipeline.backends.transformers import resolve_source
from hf_dna.pipeline.probes import load_probe_set

PROBES = load_probe_set("rand-en-4")
SETTINGS = GenerationSettings(max_new_tokens=8)


def test_hub_repo_generates_like_the_local_dir(local_hub, tiny_models):
    files = {p.name: p.read_bytes() for p in tiny_models["parent"].iterdir() if p.is_file()}
    files["pytorch_model.bin"] = b"a pickle that must never be downloaded"
    repo = local_hub.make_model(files=files)
    hub = generate_responses(repo, PROBES, SETTINGS, use_cache=False, progress=False)
    local = generate_responses(str(tiny_models["parent"]), PROBES, SETTINGS, use_cache=False, progress=False)
    assert hub.texts == local.texts
    assert hub.model_id == repo and re.fullmatch(r"[0-9a-f]{40}", hub.revision)
    snapshot = resolve_source(repo).path
    assert (snapshot / "model.safetensors").is_file() and not (snapshot / "pytorch_model.bin").exists()


def test_missing_hub_repo(local_hub):
    with pytest.raises(errors.RepoNotFoundError, match="not found"):
        generate_responses(local_hub.unique_id("missing"), PROBES, SETTINGS, use_cache=False)


def test_hub_gguf_repo_downloads_only_the_named_file(local_hub, bad_model_dirs):
    broken = bad_model_dirs["corrupt_gguf"].read_bytes()
    repo = local_hub.make_model(files={"model-Q4.gguf": broken, "model-Q8.gguf": b"not wanted"})
    with pytest.raises(errors.CorruptModelFileError, match="model-Q4.gguf"):
        generate_responses(repo, PROBES, SETTINGS, gguf_file="model-Q4.gguf", use_cache=False)
    snapshot = resolve_source(repo, gguf_file="model-Q4.gguf").path
    assert (snapshot / "model-Q4.gguf").is_file() and not (snapshot / "model-Q8.gguf").exists()
