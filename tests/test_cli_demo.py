"""`hf-dna demo`, the README's main job: a fine-tune made from the shipped SmolLM2, found with its source."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from hf_dna.cli import main


@pytest.mark.slow
def test_demo_flags_the_undeclared_base_of_the_fine_tune_it_makes(smollm2_gguf, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DNA_CACHE", str(tmp_path / "cache"))
    args = ["demo", "--probes", "paper600:50", "--max-new-tokens", "16", "--format", "json", "--quiet"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "de-quantizing" not in result.output and "it/s" not in result.output  # --quiet: no loader bars either
    verdict = json.loads(result.stdout)
    assert verdict["model"].endswith("acme-support-135m-10-steps")
    assert verdict["declared"] == {"base_models": [], "relation": None, "source": "card"}  # a card naming no base
    made = Path(verdict["model"])  # under $HF_HOME/hf-dna/demo: bf16 safetensors and a card naming no base
    assert (made / "model.safetensors").is_file() and "base_model" not in (made / "README.md").read_text()
    record = verdict["record"]
    assert record["probe_set"] == "paper600:50" and record["generation"]["sampling"] is True
    assert {"weights", "static", "probe64"} <= set(record["evidence"])
    assert verdict["flags"][0]["code"] == "undeclared-base"  # the finding: true, and found by the audit
    evidence = verdict["flags"][0]["evidence"]
    assert evidence["decided_by"] == "weights" and evidence["suggested_relation"] == "finetune"
    assert evidence["suggested_base_models"][:2] == ["HuggingFaceTB/SmolLM2-135M-Instruct",
                                                     "HuggingFaceTB/SmolLM2-135M"]
    top = verdict["nearest"][0]
    assert top["model_id"] == "HuggingFaceTB/SmolLM2-135M-Instruct" and top["weights"] == "close"
    assert 0.0 <= top["probability"] <= 1.0  # behaviour is measured too, beside the weights
    assert set(verdict["evidence"]) == {"weights", "behaviour", "static"}
    again = CliRunner().invoke(main, args)  # second run: the model and its answers are cached
    assert again.exit_code == 0 and json.loads(again.stdout)["flags"] == verdict["flags"]


def test_demo_needs_a_probe_set_with_an_embedded_store():
    result = CliRunner().invoke(main, ["demo", "--model", "smollm2", "--probes", "rand-en-5", "--quiet"])
    assert result.exit_code == 1
    assert result.output.startswith("Error: ") and len(result.output.strip().splitlines()) == 1


@pytest.mark.parametrize("probes", ["nope", "rand-en-5"])
def test_demo_checks_its_probes_before_making_the_fine_tune(probes, tmp_path, monkeypatch):
    import hf_dna.hub
    import hf_dna.pipeline.derive

    made = []
    monkeypatch.setattr(hf_dna.hub, "hf_dna_home", lambda: tmp_path / "hf-dna")
    monkeypatch.setattr(hf_dna.pipeline.derive, "demo_model", lambda *a, **k: made.append(a))
    result = CliRunner().invoke(main, ["demo", "--probes", probes])
    assert result.exit_code == 1, result.output
    assert result.output.startswith("Error: ") and len(result.output.strip().splitlines()) == 1
    assert made == []  # no fine-tune made (nor announced) for a run that cannot audit
