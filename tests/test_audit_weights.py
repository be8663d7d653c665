"""The audit decides with weight evidence: derived tiny models found with their source, honest cards clean,
unrelated same-shape models not matched, wrong claims flagged, a team's own uncalibrated store usable."""
from __future__ import annotations

import json
import shutil

import pytest
from click.testing import CliRunner

from hf_dna.audit import audit
from hf_dna.cli import main
from hf_dna.pipeline.extract import extract
from hf_dna.pipeline.record import write_records
from hf_dna.pipeline.responses import GenerationSettings
from hf_dna.reference.build import add_records

PROBES = "rand-en-4"
SETTINGS = GenerationSettings(max_new_tokens=4, batch_size=4)
BASE_ID = "test-org/tiny-base"


def card(base: str | None = None, relation: str | None = None) -> str:
    meta = ["license: mit"] + ([f"base_model: {base}"] if base else []) + (
        [f"base_model_relation: {relation}"] if relation else [])
    return "---\n" + "\n".join(meta) + "\n---\n# A tiny model\n"


@pytest.fixture(scope="module")
def team_store(tiny_models, tmp_path_factory):
    """A team's own store: the tiny parent's record (with its weight sketch) and lineage, no calibration."""
    root = tmp_path_factory.mktemp("team-store")
    record = extract(str(tiny_models["parent"]), PROBES, settings=SETTINGS, name=BASE_ID, progress=False,
                     use_cache=False)
    assert record.evidence["weights"]["tensors"] and record.evidence["static"]["architectures"] == ["LlamaForCausalLM"]
    lineage = root / "lineage.csv"
    lineage.write_text("model_id,family,parent,relation,confidence,note\n"
                       f"{BASE_ID},tiny,,base,high,\n", encoding="utf-8")
    store_dir = root / "store"
    add_records(store_dir, [record], lineage)
    return store_dir


def model_with_card(source, tmp_path, text: str):
    out = tmp_path / source.name
    shutil.copytree(source, out)
    (out / "README.md").write_text(text, encoding="utf-8")
    return out


def run_audit(path, store):
    return audit(str(path), reference=str(store), probes=PROBES, settings=SETTINGS)


def test_a_finetune_without_a_declared_base_is_found_by_its_weights(tiny_models, team_store, tmp_path):
    child = model_with_card(tiny_models["child"], tmp_path, card())
    verdict = run_audit(child, team_store)
    assert verdict.flag_codes == ["undeclared-base"]
    flag = verdict.flags[0]
    assert flag.evidence["decided_by"] == "weights" and flag.evidence["suggested_relation"] == "finetune"
    assert flag.evidence["suggested_base_models"][0] == BASE_ID and BASE_ID in flag.message
    assert verdict.nearest[0].model_id == BASE_ID and verdict.nearest[0].weights == "close"
    assert verdict.nearest[0].probability is None  # the team's store has no calibration: behaviour uncalibrated
    assert "close to test-org/tiny-base" in verdict.evidence["weights"]
    assert verdict.evidence["behaviour"].startswith("uncalibrated")


def test_an_honest_card_stays_clean(tiny_models, team_store, tmp_path):
    child = model_with_card(tiny_models["child"], tmp_path, card(BASE_ID, "finetune"))
    verdict = run_audit(child, team_store)
    assert verdict.flags == [] and verdict.declared.base_models == [BASE_ID]


def test_an_unrelated_model_of_the_same_shapes_does_not_match(tiny_models, team_store, tmp_path):
    unrelated = model_with_card(tiny_models["unrelated"], tmp_path, card())
    verdict = run_audit(unrelated, team_store)
    assert verdict.flags == [] and verdict.nearest[0].weights == "unrelated"


def test_a_declared_base_the_weights_refute_is_unsupported(tiny_models, team_store, tmp_path):
    unrelated = model_with_card(tiny_models["unrelated"], tmp_path, card(BASE_ID, "finetune"))
    verdict = run_audit(unrelated, team_store)
    assert verdict.flag_codes == ["unsupported-base"]
    assert verdict.flags[0].evidence["decided_by"] == "weights" and "not supported by the weights" in \
        verdict.flags[0].message


def test_a_quantized_claim_for_trained_weights_is_the_wrong_relation(tiny_models, team_store, tmp_path):
    child = model_with_card(tiny_models["child"], tmp_path, card(BASE_ID, "quantized"))
    verdict = run_audit(child, team_store)
    assert verdict.flag_codes == ["wrong-relation"] and verdict.flags[0].evidence["decided_by"] == "weights"


def test_another_architecture_gives_no_weight_evidence_not_unrelated(tiny_models, team_store, tmp_path):
    gpt2 = model_with_card(tiny_models["gpt2"], tmp_path, card(BASE_ID, "finetune"))
    verdict = run_audit(gpt2, team_store)
    assert verdict.nearest[0].weights is None
    assert verdict.evidence["weights"] == "no reference model with weights of the same shapes"
    assert "unsupported-base" not in verdict.flag_codes  # no weights, uncalibrated behaviour: not checked
    assert any("not checked" in note for note in verdict.notes)


def test_pickle_only_model_audits_on_behaviour_with_a_note(tiny_models, team_store, tmp_path):
    import torch
    from safetensors.torch import load_file

    pickled = tmp_path / "pickled"
    shutil.copytree(tiny_models["child"], pickled)
    state = load_file(pickled / "model.safetensors")
    (pickled / "model.safetensors").unlink()
    torch.save(state, pickled / "pytorch_model.bin")
    (pickled / "README.md").write_text(card(), encoding="utf-8")
    record = extract(str(pickled), PROBES, settings=SETTINGS, progress=False, use_cache=False)
    assert "weights" not in record.evidence  # never unpickled for a sketch
    verdict = audit(str(pickled), reference=str(team_store), record=record)
    assert verdict.evidence["weights"].startswith("not read")


def test_cli_extract_attaches_file_evidence_and_reference_add_extends_a_store(tiny_models, team_store, tmp_path):
    runner = CliRunner()
    out = tmp_path / "child.dna.json"
    result = runner.invoke(main, ["extract", str(tiny_models["child"]), "--probes", PROBES, "--max-new-tokens", "4",
                                  "--name", "test-org/tiny-child", "-o", str(out), "--quiet", "--no-cache"])
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert data["model_id"] == "test-org/tiny-child" and {"weights", "static"} <= set(data["evidence"])
    store = tmp_path / "store"
    shutil.copytree(team_store, store)
    result = runner.invoke(main, ["reference", "add", str(out), "-o", str(store)])
    assert result.exit_code == 0, result.output
    assert "2 records" in result.output
    again = runner.invoke(main, ["reference", "add", str(out), "-o", str(store)])
    assert again.exit_code == 1 and again.output.startswith("Error: ") and "--replace" in again.output
    assert len(again.output.strip().splitlines()) == 1
    assert "Records added with `hf-dna reference add`" in (store / "README.md").read_text()


def test_reference_add_refuses_a_directory_that_is_not_a_store(tmp_path, team_store):
    from hf_dna.reference import ReferenceStore

    other = tmp_path / "not-a-store"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    record = ReferenceStore.load(team_store).records[0]
    write_records([record], tmp_path / "r.json")
    result = CliRunner().invoke(main, ["reference", "add", str(tmp_path / "r.json"), "-o", str(other)])
    assert result.exit_code == 1 and "neither a reference store nor empty" in result.output
    assert [p.name for p in other.iterdir()] == ["notes.txt"]  # nothing written, nothing lost
