"""`hf-dna demo`, the README's main job, on a probe subset that has an embedded store."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from hf_dna.cli import main


@pytest.mark.slow
def test_demo_audits_the_shipped_model_against_the_embedded_reference(smollm2_gguf, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DNA_CACHE", str(tmp_path / "cache"))
    result = CliRunner().invoke(main, ["demo", "--probes", "paper600:50", "--format", "json", "--quiet"])
    assert result.exit_code == 0, result.output
    assert "de-quantizing" not in result.output and "it/s" not in result.output  # --quiet: no loader bars either
    verdict = json.loads(result.stdout)
    assert verdict["model"].endswith(smollm2_gguf.name) and verdict["declared"]["source"] == "none"
    record = verdict["record"]
    assert record["probe_set"] == "paper600:50" and record["n_probes"] == 50
    assert record["generation"]["sampling"] is True and record["generation"]["chat_template_used"] is False
    assert set(record["evidence"]) == {"lex", "emb1024", "probe64", "lexprobe64", "static"}
    static = record["evidence"]["static"]  # read from the GGUF header
    assert static["architectures"] == ["llama"] and len(static["tokenizer_vocab_hash"]) == 64
    nearest = verdict["nearest"]
    assert len(nearest) == 5 and all(0.0 <= n["probability"] <= 1.0 for n in nearest)
    assert [n["probability"] for n in nearest] == sorted((n["probability"] for n in nearest), reverse=True)
    assert verdict["verdict"] in {"clean", "flagged"}


def test_demo_needs_a_probe_set_with_an_embedded_store():
    result = CliRunner().invoke(main, ["demo", "--probes", "rand-en-5", "--quiet"])
    assert result.exit_code == 1
    assert result.output.startswith("Error: ") and len(result.output.strip().splitlines()) == 1
