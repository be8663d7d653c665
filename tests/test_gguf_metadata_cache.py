"""The config and tokenizer of a GGUF model are read from the file once, then from their saved copy."""
from __future__ import annotations

import json

from hf_dna.pipeline.backends import transformers as backend
from hf_dna.pipeline.backends.transformers import TransformersGenerator, gguf_sidecar, resolve_source
from hf_dna.pipeline.probes import load_probe_set
from hf_dna.pipeline.responses import GenerationSettings

PROBES = load_probe_set("paper600:100").prompts


def what_it_reads(generator: TransformersGenerator) -> list:
    tok = generator.tokenizer
    return [generator.prompt_ids(PROBES), [tok(p)["input_ids"] for p in PROBES], tok.eos_token_id, tok.bos_token_id,
            tok.pad_token_id, tok.chat_template, type(generator.config).__name__, generator.own_decoding,
            generator.context_length, generator.use_chat_template]


def test_a_gguf_model_is_parsed_once_and_reads_the_same_after(smollm2_gguf, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DNA_CACHE", str(tmp_path / "cache"))
    source = resolve_source(str(smollm2_gguf))
    sidecar = gguf_sidecar(source)
    assert sidecar is not None and sidecar.parent == tmp_path / "cache" / "gguf-metadata" and not sidecar.exists()
    settings = GenerationSettings(chat_template="on")
    first = TransformersGenerator(source, settings)
    assert (sidecar / "config.json").is_file() and (sidecar / "tokenizer.json").is_file()

    def no_parsing(*args, **kwargs):
        raise AssertionError("the GGUF file was parsed again")

    monkeypatch.setattr(backend, "check_config", no_parsing)
    second = TransformersGenerator(source, settings)
    assert json.dumps(what_it_reads(second)) == json.dumps(what_it_reads(first))


def test_a_damaged_copy_is_read_afresh_and_replaced(smollm2_gguf, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DNA_CACHE", str(tmp_path / "cache"))
    source = resolve_source(str(smollm2_gguf))
    sidecar = gguf_sidecar(source)
    sidecar.mkdir(parents=True)
    (sidecar / "config.json").write_text("{not json")
    generator = TransformersGenerator(source, GenerationSettings())
    assert type(generator.config).__name__ == "LlamaConfig"
    assert json.loads((sidecar / "config.json").read_text())["model_type"] == "llama"


def test_models_that_are_not_gguf_files_have_no_copy(tiny_models):
    assert gguf_sidecar(resolve_source(str(tiny_models["parent"]))) is None
