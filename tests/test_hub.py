"""hf_dna.hub against the local Hub server: declared lineage, static evidence, typed errors, generic helpers."""
from __future__ import annotations

import json

import numpy as np
import pytest

from hf_dna import hub
from hf_dna.errors import CorruptModelFileError, GatedRepoError, HubOfflineError, InvalidInputError, RepoNotFoundError, StaleParentError

LLAMA_CONFIG = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 32}
TOKENIZER = json.dumps({"model": {"type": "BPE", "vocab": {"b": 1, "a": 0, "c": 2}}})


def write_gguf(path, base_repo: str | None = "HuggingFaceTB/SmolLM2-135M") -> str:
    """A tiny valid GGUF file with a declared base model and a 3-token vocab."""
    import gguf

    writer = gguf.GGUFWriter(str(path), "llama")
    if base_repo:
        org, name = base_repo.split("/")
        writer.add_uint32("general.base_model.count", 1)
        writer.add_string("general.base_model.0.name", name)
        writer.add_string("general.base_model.0.organization", org)
        writer.add_string("general.base_model.0.repo_url", f"https://huggingface.co/{base_repo}")
    writer.add_string("general.license", "apache-2.0")
    writer.add_token_list(["a", "b", "c"])
    writer.add_tensor("w", np.zeros((4, 4), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return str(path)


def test_card_without_base_model(local_hub):
    repo_id = local_hub.make_model(card={"license": "apache-2.0", "tags": ["chat"]}, config=LLAMA_CONFIG,
                                   files={"tokenizer.json": TOKENIZER})
    meta = hub.model_metadata(repo_id)
    assert meta.base_models == [] and meta.base_model_relation is None
    assert meta.revision == hub.head_sha(repo_id)
    assert meta.license == "apache-2.0" and "chat" in meta.tags
    assert meta.architectures == ["LlamaForCausalLM"] and meta.model_type == "llama" and meta.vocab_size == 32
    assert meta.tokenizer_vocab_hash == hub.tokenizer_vocab_hash(["c", "a", "b"])
    assert meta.warnings == []


def test_card_with_single_base_model(local_hub):
    repo_id = local_hub.make_model(card={"base_model": "org/base", "pipeline_tag": "text-generation"})
    meta = hub.model_metadata(repo_id)
    assert meta.base_models == ["org/base"]
    assert meta.base_model_relation == "finetune" and meta.relation_declared is False
    assert meta.base_model_sources == {"org/base": ["card", "tags"]}
    assert "base_model:finetune:org/base" in meta.tags and meta.pipeline_tag == "text-generation"


def test_card_with_base_model_list_and_relation(local_hub):
    repo_id = local_hub.make_model(card={"base_model": ["org/a", "org/b"], "base_model_relation": "merge"})
    meta = hub.model_metadata(repo_id)
    assert meta.base_models == ["org/a", "org/b"]
    assert meta.base_model_relation == "merge" and meta.relation_declared is True


def test_relation_qualified_tags_only(local_hub):
    repo_id = local_hub.make_model(card={"tags": ["base_model:quantized:org/q", "other"]})
    meta = hub.model_metadata(repo_id)
    assert meta.base_models == ["org/q"] and meta.base_model_relation == "quantized"
    assert hub.parse_base_model_tags(["base_model:org/x", "base_model:adapter:org/x"]) == (["org/x"], "adapter")


def test_adapter_config_base(local_hub):
    repo_id = local_hub.make_model(card={"license": "mit"},
                                   files={"adapter_config.json": json.dumps({"base_model_name_or_path": "org/llm"})})
    meta = hub.model_metadata(repo_id)
    assert meta.base_models == ["org/llm"] and meta.base_model_relation == "adapter"
    assert meta.base_model_sources == {"org/llm": ["adapter_config"]}


def test_gguf_header_read_remotely(local_hub, tmp_path):
    gguf_bytes = open(write_gguf(tmp_path / "m.gguf"), "rb").read()
    repo_id = local_hub.make_model(files={"m.Q4.gguf": gguf_bytes})
    before = len(local_hub.server.requests)
    meta = hub.model_metadata(repo_id)
    assert meta.base_models == ["HuggingFaceTB/SmolLM2-135M"] and meta.base_model_relation == "quantized"
    assert meta.license == "apache-2.0" and meta.model_type == "llama"
    assert meta.tokenizer_vocab_hash == hub.tokenizer_vocab_hash(["a", "b", "c"])
    gets = [p for m, p in local_hub.server.requests[before:] if m == "GET" and p.endswith(".gguf")]
    assert len(gets) == 1  # one ranged read, not a download through the cache


def test_malformed_card_yaml_is_a_warning(local_hub):
    repo_id = local_hub.make_model(card="---\nbase_model: [org/a\nlicense: mit\n---\n# card\n",
                                   files={"adapter_config.json": json.dumps({"base_model_name_or_path": "org/a"})})
    meta = hub.model_metadata(repo_id)
    assert len(meta.warnings) == 1 and "not valid YAML" in meta.warnings[0]
    assert meta.base_models == ["org/a"]  # other sources still count


def test_missing_repo(local_hub):
    with pytest.raises(RepoNotFoundError, match="not found"):
        hub.model_metadata(f"{local_hub.org}/does-not-exist")


def test_gated_repo_without_token(local_hub, no_token):
    repo_id = local_hub.make_model(card={"base_model": "org/base"}, gated=True)
    with pytest.raises(GatedRepoError, match="gated"):
        hub.model_metadata(repo_id)
    with pytest.raises(GatedRepoError):
        hub.model_metadata(repo_id, token=local_hub.other_token)
    assert hub.model_metadata(repo_id, token=local_hub.token).base_models == ["org/base"]


def test_private_repo_without_token_is_not_found(local_hub, no_token):
    repo_id = local_hub.make_model(card={"license": "mit"}, private=True)
    with pytest.raises(RepoNotFoundError):
        hub.model_metadata(repo_id)
    assert hub.model_metadata(repo_id, token=local_hub.token).private is True


def test_offline_raises_hub_offline_error(local_hub, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(HubOfflineError, match="HF_HUB_OFFLINE"):
        hub.model_metadata("org/anything")
    with pytest.raises(HubOfflineError):
        hub.list_models("org")


def test_local_metadata_dir_and_gguf(tmp_path):
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "README.md").write_text("---\nbase_model: org/base\nbase_model_relation: finetune\n---\n")
    (model_dir / "config.json").write_text(json.dumps(LLAMA_CONFIG))
    (model_dir / "tokenizer.json").write_text(TOKENIZER)
    meta = hub.local_metadata(model_dir)
    assert meta.source == "local" and meta.base_models == ["org/base"] and meta.relation_declared
    assert meta.vocab_size == 32 and meta.tokenizer_vocab_hash == hub.tokenizer_vocab_hash("abc")
    gguf_meta = hub.local_metadata(write_gguf(tmp_path / "x.gguf", base_repo=None))
    assert gguf_meta.base_models == [] and gguf_meta.architectures == ["llama"] and gguf_meta.vocab_size == 3
    (tmp_path / "bad.gguf").write_bytes(b"GGUF\x03\x00\x00\x00" + b"\x00" * 7)
    with pytest.raises(CorruptModelFileError):
        hub.local_metadata(tmp_path / "bad.gguf")
    with pytest.raises(InvalidInputError):
        hub.local_metadata(tmp_path / "absent")


def test_commit_helpers_pr_and_discussions(local_hub):
    repo_id = local_hub.unique_id("helpers")
    hub.create_repo(repo_id)
    head = hub.head_sha(repo_id)
    result = hub.commit_files(repo_id, {"a.txt": "1"}, "add a", parent_commit=head)
    assert result.sha != head and hub.list_repo_files(repo_id) == [".gitattributes", "a.txt"]
    with pytest.raises(StaleParentError):
        hub.commit_files(repo_id, {"b.txt": "2"}, "add b", parent_commit=head)
    assert hub.read_text(repo_id, "a.txt") == "1" and hub.read_text(repo_id, "nope.txt") is None
    url = hub.open_pr_with_file(repo_id, "README.md", "# card\n", "hf-dna: card", "details")
    [discussion] = hub.list_discussions(repo_id)
    assert discussion["url"] == url and discussion["is_pull_request"] and discussion["title"] == "hf-dna: card"
    assert hub.read_text(repo_id, "README.md", revision=f"refs/pr/{discussion['num']}") == "# card\n"
    assert repo_id in hub.list_models(local_hub.org)


def test_repo_entries_and_content_matching(local_hub):
    repo_id = local_hub.make_model(files={"d/x.bin": b"abc"})
    entries = hub.list_repo_entries(repo_id)
    assert entries["d/x.bin"]["size"] == 3
    assert hub.content_matches(entries["d/x.bin"], b"abc") and not hub.content_matches(entries["d/x.bin"], b"abd")
    import hashlib

    lfs_entry = {"blob_id": "pointer-sha", "sha256": hashlib.sha256(b"abc").hexdigest()}
    assert hub.content_matches(lfs_entry, b"abc") and not hub.content_matches(lfs_entry, b"x")
