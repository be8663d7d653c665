"""The shipped gemma-3-270m Q4_K_M GGUF (a re-export of google/gemma-3-270m, with no card) audited as a user would,
against the embedded reference: its weights match google/gemma-3-270m's record near-identically, so the audit flags
`undeclared-base` naming it, decided by the weights. Behaviour is generated at 16 new tokens on paper600:50 to keep
it to a minute or two (the weights do not care; bench/e2e_demo.py runs the full demo). Skips without the package.
"""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

pytestmark = pytest.mark.slow


def test_gemma_q4_gguf_reupload_is_flagged_with_its_base(gemma_gguf, monkeypatch):
    from hf_dna.cli import main

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    result = CliRunner().invoke(main, ["audit", str(gemma_gguf), "--probes", "paper600:50",
                                       "--max-new-tokens", "16", "--format", "json", "--quiet"])
    assert result.exit_code == 0, result.output
    verdict = json.loads(result.stdout)
    assert verdict["declared"]["source"] == "none"
    assert verdict["nearest"][0]["model_id"] == "google/gemma-3-270m"
    flag = next(f for f in verdict["flags"] if f["code"] == "undeclared-base")
    assert flag["evidence"]["suggested_base_models"][0] == "google/gemma-3-270m"
    assert flag["evidence"]["decided_by"] == "weights"
