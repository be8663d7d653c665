"""`hf-dna reference enrich`: file evidence for reference records from the (local) Hub, by range reads.

The local Hub server serves the real safetensors, config and tokenizer files of tiny models the tests build; a
reference made from behaviour only gets each model's static evidence and weight sketch, resumably, and a
derived model audited against the enriched reference is found with its source.
"""
from __future__ import annotations

import json
import shutil

import pytest
from click.testing import CliRunner

from hf_dna.cli import main
from hf_dna.evidence.weights import compare_sketches, sketch_files
from hf_dna.pipeline.extract import extract
from hf_dna.pipeline.responses import GenerationSettings
from hf_dna.reference import ReferenceStore
from hf_dna.reference.build import add_records

PROBES = "rand-en-4"
SETTINGS = GenerationSettings(max_new_tokens=4, batch_size=4)


def repo_files(model_dir) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in model_dir.iterdir() if p.is_file()}


@pytest.fixture()
def hub_reference(local_hub, tiny_models, tmp_path):
    """Two tiny models on the local Hub, a third id that is not there, and a behaviour-only store of all three."""
    ids = {name: local_hub.make_model(local_hub.unique_id(name), files=repo_files(tiny_models[name]))
           for name in ("parent", "unrelated")}
    ids["missing"] = local_hub.unique_id("gone")
    records = [extract(str(tiny_models["parent" if name == "missing" else name]), PROBES, settings=SETTINGS,
                       name=repo, progress=False, use_cache=False, weights=False) for name, repo in ids.items()]
    for record in records:  # what a reference built from responses carries: behaviour only
        record.evidence.pop("static", None)
    store = tmp_path / "store"
    add_records(store, records)
    return ids, store


def test_enrich_adds_static_and_weight_evidence_read_by_ranges(hub_reference, tiny_models, local_hub):
    ids, store = hub_reference
    result = CliRunner().invoke(main, ["reference", "enrich", str(store), "--token", local_hub.token])
    assert result.exit_code == 0, result.output
    assert "2 enriched, 0 already had file evidence, 1 failed" in result.output
    assert f"{ids['missing']}: failed" in result.output
    enriched = {r.model_id: r for r in ReferenceStore.load(store).records}
    parent = enriched[ids["parent"]]
    assert parent.evidence["static"]["architectures"] == ["LlamaForCausalLM"]
    local = sketch_files(tiny_models["parent"])
    same = compare_sketches(parent.evidence["weights"], local)
    assert same["relation"] == "near-identical" and same["similarity"] > 0.9999  # the very files, read by ranges
    assert "weights" not in enriched[ids["missing"]].evidence  # left as it was

    again = CliRunner().invoke(main, ["reference", "enrich", str(store), "--token", local_hub.token, "--quiet"])
    assert again.exit_code == 0 and "0 enriched, 2 already had file evidence, 1 failed" in again.output


def test_enriched_reference_finds_a_derived_model(hub_reference, tiny_models, local_hub, tmp_path):
    from hf_dna.audit import audit

    ids, store = hub_reference
    CliRunner().invoke(main, ["reference", "enrich", str(store), "--token", local_hub.token, "--quiet"])
    child = tmp_path / "child"
    shutil.copytree(tiny_models["child"], child)
    (child / "README.md").write_text("---\nlicense: mit\n---\n# no base named\n", encoding="utf-8")
    verdict = audit(str(child), reference=str(store), probes=PROBES, settings=SETTINGS)
    assert verdict.flag_codes == ["undeclared-base"]
    assert verdict.flags[0].evidence["suggested_base_models"][0] == ids["parent"]


def test_enrich_a_hub_dataset_and_push_it_back(hub_reference, local_hub, tmp_path):
    from hf_dna.reference import pull, push

    ids, store = hub_reference
    repo = local_hub.unique_id("reference")
    push(ReferenceStore.load(store), repo, token=local_hub.token)
    out = tmp_path / "pulled"
    result = CliRunner().invoke(main, ["reference", "enrich", repo, "-o", str(out), "--push", "--token",
                                       local_hub.token, "--models", ids["parent"], "--quiet"])
    assert result.exit_code == 0, result.output
    assert "1 enriched" in result.output and f"pushed to {repo}" in result.output
    back = {r.model_id: r for r in pull(repo, tmp_path / "back", token=local_hub.token).records}
    assert back[ids["parent"]].evidence["weights"]["tensors"]  # read back from the Hub dataset
    assert "weights" not in back[ids["unrelated"]].evidence  # --models: only that one


def test_enrich_bad_input_is_one_line(hub_reference, tmp_path):
    ids, store = hub_reference
    runner = CliRunner()
    unknown = runner.invoke(main, ["reference", "enrich", str(store), "--models", "nobody/nothing"])
    assert unknown.exit_code == 1 and unknown.output.startswith("Error: not in the reference: nobody/nothing")
    hub_without_dir = runner.invoke(main, ["reference", "enrich", "some-org/some-dataset"])
    assert hub_without_dir.exit_code == 1 and "-o DIR" in hub_without_dir.output
    push_local = runner.invoke(main, ["reference", "enrich", str(store), "--push"])
    assert push_local.exit_code == 1 and "--push needs STORE to be a Hub dataset" in push_local.output
    for result in (unknown, hub_without_dir, push_local):
        assert len(result.output.strip().splitlines()) == 1
    assert json.loads((store / "hf-dna.json").read_text())  # the store is untouched


def test_enrich_from_local_files_gives_the_hub_sketch(hub_reference, tiny_models, tmp_path):
    """--from-files reads a model's evidence from a local copy (no Hub call): the sketch equals the local one, only
    that model is touched, and a derived model audited against the store is found with its source."""
    from hf_dna.audit import audit

    ids, store = hub_reference
    result = CliRunner().invoke(main, ["reference", "enrich", str(store), "--quiet", "--from-files",
                                       f"{ids['missing']}={tiny_models['parent']}"])
    assert result.exit_code == 0, result.output
    assert "1 enriched, 0 already had file evidence, 0 failed" in result.output
    records = {r.model_id: r for r in ReferenceStore.load(store).records}
    assert records[ids["missing"]].evidence["weights"]["tensors"] == sketch_files(tiny_models["parent"])["tensors"]
    assert records[ids["missing"]].evidence["static"]["architectures"] == ["LlamaForCausalLM"]
    assert "weights" not in records[ids["parent"]].evidence and "weights" not in records[ids["unrelated"]].evidence
    child = tmp_path / "child"
    shutil.copytree(tiny_models["child"], child)
    verdict = audit(str(child), reference=str(store), probes=PROBES, settings=SETTINGS)
    assert verdict.flag_codes == ["undeclared-base"]
    assert verdict.flags[0].evidence["suggested_base_models"][0] == ids["missing"]


def test_enrich_from_files_bad_input_is_one_line(hub_reference, tmp_path):
    ids, store = hub_reference
    before = {p: p.read_bytes() for p in store.rglob("*") if p.is_file()}
    runner = CliRunner()
    for args, message in ((["--from-files", "no-equals-sign"], "--from-files takes MODEL_ID=PATH"),
                          (["--from-files", f"{ids['parent']}={tmp_path / 'nowhere'}"], "no such model path"),
                          (["--from-files", f"nobody/nothing={tmp_path}"], "not in the reference: nobody/nothing")):
        out = runner.invoke(main, ["reference", "enrich", str(store), *args])
        assert out.exit_code == 1 and out.output.startswith("Error: ") and message in out.output, out.output
        assert out.output.count("\n") == 1
    assert {p: p.read_bytes() for p in store.rglob("*") if p.is_file()} == before  # nothing written
