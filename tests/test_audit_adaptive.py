"""`audit(adaptive=True)`: the nested store's probes first, the rest only while the verdict is unsure."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from hf_dna.audit import audit
from hf_dna.audit.run import nested_store
from hf_dna.cli import main
from hf_dna.pipeline.probes import load_probe_set
from hf_dna.pipeline.responses import GenerationSettings
from hf_dna.reference import ReferenceStore
from hf_dna.reference.layout import CALIBRATION_NAME, EARLY_STOP

SETTINGS = GenerationSettings.paper(max_new_tokens=6, batch_size=50)
FULL = load_probe_set("paper600:100")


def reference_with_stop(tmp_path: Path, below: float | None) -> Path:
    """A copy of the embedded paper600-100 store whose calibration names paper600-50 with stop point `below`
    (None: no early-stop entry at all)."""
    store = ReferenceStore.default_for(FULL)
    out = tmp_path / "ref"
    shutil.copytree(store.source, out)
    calibration = json.loads((out / CALIBRATION_NAME).read_text())
    calibration.pop(EARLY_STOP, None)
    if below is not None:
        calibration[EARLY_STOP] = {"probe_hash": FULL.head(50).hash, "n_probes": 50, "family_confidence_below": below}
    (out / CALIBRATION_NAME).write_text(json.dumps(calibration))
    return out


def cached_answers(cache: Path) -> int:
    """How many answers the response cache holds, over all its keys."""
    return sum(len(json.loads(f.read_text())["indices"]) for f in cache.rglob("batch-*.json"))


def test_a_sure_verdict_stops_after_the_nested_stores_probes(tmp_path, tiny_models, monkeypatch):
    monkeypatch.setenv("HF_DNA_CACHE", str(tmp_path / "cache"))
    verdict = audit(str(tiny_models["gpt2"]), reference=reference_with_stop(tmp_path, 0.999), settings=SETTINGS,
                    base_models=["x/y"], relation="finetune", adaptive=True)
    assert verdict.record.n_probes == 50 and verdict.record.probe_hash == FULL.head(50).hash
    assert verdict.family_confidence is not None and verdict.family_confidence < 0.999
    assert any("stopped after the first 50 of 100 probes, judged on paper600-50" in n for n in verdict.notes)
    assert cached_answers(tmp_path / "cache") == 50  # the other 50 were never asked


def test_an_unsure_verdict_asks_the_rest_and_keeps_the_first_answers(tmp_path, tiny_models, monkeypatch):
    from hf_dna.pipeline.backends.transformers import TransformersGenerator

    monkeypatch.setenv("HF_DNA_CACHE", str(tmp_path / "cache"))
    loads, load = [], TransformersGenerator._load_model
    monkeypatch.setattr(TransformersGenerator, "_load_model", lambda self: loads.append(1) or load(self))
    verdict = audit(str(tiny_models["gpt2"]), reference=reference_with_stop(tmp_path, 0.001), settings=SETTINGS,
                    base_models=["x/y"], relation="finetune", adaptive=True)
    assert verdict.record.n_probes == 100 and verdict.record.probe_hash == FULL.hash
    assert any("asked all 100 probes" in n and "not below the stop point 0.00" in n for n in verdict.notes)
    assert cached_answers(tmp_path / "cache") == 100  # each probe answered once: the first 50 were not asked again
    assert len(loads) == 1  # one LM load for both asks
    assert "weights" in verdict.record.evidence  # the weight sketch of the first record is carried over
    # the whole record is the one a plain audit makes from the same answers: same probes, same DNA shape
    plain = audit(str(tiny_models["gpt2"]), reference=reference_with_stop(tmp_path / "plain", None),
                  settings=SETTINGS, base_models=["x/y"], relation="finetune")
    assert plain.record.probe_hash == verdict.record.probe_hash and len(plain.record.dna) == len(verdict.record.dna)


def test_a_reference_without_a_stop_point_asks_everything_and_says_so(tmp_path, tiny_models, monkeypatch):
    monkeypatch.setenv("HF_DNA_CACHE", str(tmp_path / "cache"))
    verdict = audit(str(tiny_models["gpt2"]), reference=reference_with_stop(tmp_path, None), settings=SETTINGS,
                    base_models=["x/y"], relation="finetune", adaptive=True)
    assert verdict.record.n_probes == 100
    assert any("names no smaller reference nested in it" in n for n in verdict.notes)


def test_the_embedded_full_store_names_its_nested_store_with_a_measured_point():
    found = nested_store(ReferenceStore.default_for(FULL), FULL)
    assert found is not None
    small, head, below = found
    assert small.config["probe_hash"] == head.hash == FULL.head(50).hash and 0 < below < 1
    # measured, not set by hand: stopping there lost no undeclared-base on held-out cards under either refit
    stop = ReferenceStore.default_for(FULL).calibration[EARLY_STOP]
    assert all(m["undeclared_lost"] == 0 and m["undeclared_added"] == 0 for m in stop["measured"].values())
    info = CliRunner().invoke(main, ["reference", "info", ReferenceStore.default_for(FULL).source, "--json"])
    assert json.loads(info.output)["adaptive_stop"]["family_confidence_below"] == below


@pytest.mark.parametrize("extra", [["--responses", "answers.jsonl"], ["--record", "r.json"]])
def test_adaptive_with_given_answers_is_a_one_line_error(extra, tmp_path):
    for name in ("answers.jsonl", "r.json"):
        (tmp_path / name).write_text("{}\n")
    args = ["audit", "m", "--adaptive", *[str(tmp_path / a) if a.endswith(("jsonl", "json")) else a for a in extra]]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1 and result.output.strip().count("\n") == 0
    assert "adaptive audits ask the model step by step" in result.output


def test_head_and_tail_split_a_probe_set_into_its_two_asks():
    head, tail = FULL.head(50), FULL.tail(50)
    assert head.name == "paper600:50" and head.hash == load_probe_set("paper600:50").hash  # not paper600:100:50
    assert tail.name == "paper600:100[50:]" and head.prompts + tail.prompts == FULL.prompts
    with pytest.raises(Exception, match="no tail after 100"):
        FULL.tail(100)


def test_an_api_model_going_on_is_asked_each_probe_once(tmp_path, monkeypatch):
    from hf_dna.pipeline.backends.api import ApiSettings
    from tests.openai_server import OpenAIServer, echo_answerer

    monkeypatch.setenv("HF_DNA_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TEST_API_KEY", "sk-test")
    with OpenAIServer(echo_answerer(), api_key="sk-test") as server:
        api = ApiSettings(base_url=server.base_url, api_key_env="TEST_API_KEY", timeout=2.0, backoff=0.02)
        verdict = audit("smollm2-local", reference=reference_with_stop(tmp_path, 0.001), settings=SETTINGS,
                        base_models=["x/y"], relation="finetune", adaptive=True, backend="api", api=api)
        assert verdict.record.n_probes == 100 and len(server.bodies) == 100
        assert verdict.record.generation["backend"] == "api"
