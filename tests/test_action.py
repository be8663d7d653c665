"""The GitHub Action: schema-valid action.yml and example workflow; its audit step run as a script with
GITHUB_OUTPUT / GITHUB_STEP_SUMMARY pointing at temp files, on saved verdicts and through the real CLI."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hf_dna.pipeline.record import write_records
from tests.dna_synth import family_records, make_store, verdict_for

ROOT = Path(__file__).resolve().parents[1]
ACTION = ROOT / "action" / "action.yml"
STEP_SCRIPT = ROOT / "action" / "run_audit.py"
WORKFLOW = ROOT / "examples" / "workflows" / "hf-dna-audit.yml"
CHECKER = shutil.which("check-jsonschema") or str(Path(sys.executable).parent / "check-jsonschema")


def _schema_check(schema: str, path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([CHECKER, "--builtin-schema", schema, str(path)], capture_output=True, text=True, timeout=120)


def read_outputs(path: Path) -> dict[str, str]:
    """Parse a $GITHUB_OUTPUT file (name=value lines and name<<DELIM heredocs)."""
    outputs, lines = {}, path.read_text().splitlines()
    i = 0
    while i < len(lines):
        name, sep, delim = lines[i].partition("<<")
        if sep:
            end = lines.index(delim, i + 1)
            outputs[name] = "\n".join(lines[i + 1:end])
            i = end + 1
        else:
            key, _, value = lines[i].partition("=")
            outputs[key] = value
            i += 1
    return outputs


@pytest.fixture()
def gh_env(tmp_path):
    """Environment of a GitHub runner step: output and summary files in tmp_path."""
    (tmp_path / "out").touch()
    (tmp_path / "summary.md").touch()
    return {**os.environ, "GITHUB_OUTPUT": str(tmp_path / "out"), "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"),
            "RUNNER_TEMP": str(tmp_path / "runner"), "HF_HUB_OFFLINE": "1"}


def test_action_and_workflow_validate_against_schemas(tmp_path):
    for schema, path in (("vendor.github-actions", ACTION), ("vendor.github-workflows", WORKFLOW)):
        result = _schema_check(schema, path)
        assert result.returncode == 0, result.stdout + result.stderr
    broken = yaml.safe_load(ACTION.read_text())
    del broken["runs"]["using"]
    (tmp_path / "broken.yml").write_text(yaml.safe_dump(broken))
    assert _schema_check("vendor.github-actions", tmp_path / "broken.yml").returncode == 1  # the check can fail


def test_action_wiring():
    action = yaml.safe_load(ACTION.read_text())
    assert set(action["inputs"]) == {"model", "reference", "hf-token", "probes", "fail-on", "publish", "extra-args",
                                     "python-version", "hf-dna-version"}
    assert {name: out["value"] for name, out in action["outputs"].items()} == {
        name: f"${{{{ steps.audit.outputs.{name} }}}}" for name in ("verdict", "flags", "nearest", "report-path")}
    steps = action["runs"]["steps"]
    assert steps[0]["uses"].startswith("actions/setup-python@")
    assert "torch==2.13.0" in steps[1]["run"] and "download.pytorch.org/whl/cpu" in steps[1]["run"]
    used = " ".join(json.dumps(step) for step in steps)
    for name in action["inputs"]:
        assert f"inputs.{name}" in used, f"input {name} is never used"
    workflow = yaml.safe_load(WORKFLOW.read_text())
    triggers = workflow[True] if True in workflow else workflow["on"]  # YAML 1.1 reads `on` as True
    assert {"release", "push", "workflow_dispatch"} <= set(triggers)
    assert "model" in triggers["workflow_dispatch"]["inputs"]


def run_audit_step(inputs: dict[str, str], env: dict[str, str]) -> subprocess.CompletedProcess:
    """Run the action's `audit` step the way the runner does: expressions substituted, env set, bash."""
    action = yaml.safe_load(ACTION.read_text())
    step = next(s for s in action["runs"]["steps"] if s.get("id") == "audit")
    values = {name: spec.get("default", "") for name, spec in action["inputs"].items()} | inputs

    def expand(text: str) -> str:
        def one(match: re.Match) -> str:
            expr = match.group(1).strip()
            if expr == "github.action_path":
                return str(ACTION.parent)
            assert expr.startswith("inputs."), f"unexpected expression {expr}"
            return values[expr.removeprefix("inputs.")]
        return re.sub(r"\$\{\{(.*?)\}\}", one, text)

    step_env = {**env, **{k: expand(str(v)) for k, v in step["env"].items()}}
    step_env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return subprocess.run([step["shell"], "-e", "-c", expand(step["run"])], env=step_env, capture_output=True,
                          text=True, timeout=300)


def _verdict(tmp_path: Path, flags: list[dict]) -> Path:
    records, _ = family_records(n_families=1, per_family=1)
    path = tmp_path / "verdict.json"
    path.write_text(json.dumps(verdict_for(records[0], "fam0", flags)))
    return path


FLAGS = [{"code": "undeclared-base", "message": "ref/base is a close relative\nnot named", "evidence": {"p": 0.9}},
         {"code": "no-base-declared", "message": "finetune without a base", "evidence": {}}]


def test_step_script_fails_only_on_fail_on_flags(tmp_path, gh_env):
    verdict = _verdict(tmp_path, FLAGS)
    env = {**gh_env, "INPUT_FAIL_ON": "undeclared-base"}
    proc = subprocess.run([sys.executable, str(STEP_SCRIPT), "--verdict", str(verdict), "--exit-code", "3"],
                          env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    lines = proc.stdout.splitlines()
    assert "::error title=hf-dna undeclared-base%3A org0/fam0-model-0::ref/base is a close relative%0Anot named" \
           ' | evidence: {"p": 0.9}' in lines
    assert "::warning title=hf-dna no-base-declared%3A org0/fam0-model-0::finetune without a base" in lines
    outputs = read_outputs(tmp_path / "out")
    assert outputs["verdict"] == "flagged"
    assert json.loads(outputs["flags"]) == ["undeclared-base", "no-base-declared"]
    assert json.loads(outputs["nearest"])[0] == {"model_id": "ref/base", "distance": 0.1, "probability": 0.9,
                                                 "family": "fam0"}
    assert outputs["report-path"] == str(verdict)
    summary = (tmp_path / "summary.md").read_text()
    assert summary.startswith("## hf-dna audit: `org0/fam0-model-0`: flagged")
    assert "**undeclared-base**" in summary


@pytest.mark.parametrize("fail_on,flags", [("unsupported-base", FLAGS), ("undeclared-base", [])])
def test_step_script_passes_without_fail_on_flags(tmp_path, gh_env, fail_on, flags):
    proc = subprocess.run([sys.executable, str(STEP_SCRIPT), "--verdict", str(_verdict(tmp_path, flags))],
                          env={**gh_env, "INPUT_FAIL_ON": fail_on}, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "::error" not in proc.stdout and proc.stdout.count("::warning") == len(flags)
    assert read_outputs(tmp_path / "out")["verdict"] == ("flagged" if flags else "clean")


def test_action_step_audits_with_the_real_cli(tmp_path, gh_env):
    records, families = family_records(n_families=3, per_family=4)
    store = make_store(tmp_path / "store", records[1:], families, calibrate=True)
    write_records(records[:1], tmp_path / "child.dna.json")
    inputs = {"model": "acme/child", "reference": str(store), "fail-on": "undeclared-base",
              "extra-args": f"--record {tmp_path / 'child.dna.json'}"}
    proc = run_audit_step(inputs, gh_env)
    assert proc.returncode == 1, proc.stdout + proc.stderr  # a fam0 relative the card does not name
    outputs = read_outputs(tmp_path / "out")
    assert outputs["verdict"] == "flagged" and "undeclared-base" in json.loads(outputs["flags"])
    assert json.loads(outputs["nearest"])[0]["family"] == "fam0"
    report = Path(outputs["report-path"])
    assert json.loads(report.read_text())["model"] == "acme/child" and report.with_suffix(".md").is_file()
    assert "::error title=hf-dna undeclared-base%3A acme/child::" in proc.stdout

    (tmp_path / "out").write_text("")
    inputs["extra-args"] += f" --base-model {records[1].model_id} --relation finetune"
    proc = run_audit_step(inputs, gh_env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert read_outputs(tmp_path / "out")["verdict"] == "clean" and "::error" not in proc.stdout


def test_action_step_reports_audit_errors(tmp_path, gh_env):
    proc = run_audit_step({"model": "acme/missing", "reference": str(tmp_path / "no-store")}, gh_env)
    assert proc.returncode == 1
    assert re.search(r"^::error title=hf-dna audit failed%3A acme/missing::.+", proc.stdout, re.M)
    assert read_outputs(tmp_path / "out") == {"verdict": "error", "flags": "[]", "nearest": "[]", "report-path": ""}
    assert "acme/missing`: error" in (tmp_path / "summary.md").read_text()
