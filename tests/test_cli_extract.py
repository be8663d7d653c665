"""`hf-dna extract` through click's runner, once as a real subprocess, and its bad-input behaviour."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from hf_dna.cli import main
from hf_dna.pipeline.record import read_records

TINY = ["--probes", "rand-en-6", "--max-new-tokens", "8", "--quiet"]


@pytest.fixture
def runner(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DNA_CACHE", str(tmp_path / "cache"))
    return CliRunner()


def test_one_model_to_stdout(runner, tiny_models):
    result = runner.invoke(main, ["extract", str(tiny_models["parent"]), *TINY, "-o", "-"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["model_id"] == "parent" and record["dim"] == 128 and record["n_probes"] == 6


def test_several_models_to_parquet(runner, tiny_models, tmp_path):
    out = tmp_path / "dna.parquet"
    args = ["extract", str(tiny_models["parent"]), str(tiny_models["gpt2"]), *TINY, "--dim", "32", "-o", str(out)]
    result = runner.invoke(main, args)
    assert result.exit_code == 0, result.output
    records = read_records(out)
    assert [r.model_id for r in records] == ["parent", "gpt2"] and {r.dim for r in records} == {32}


def test_several_models_to_jsonl_one_record_a_line(runner, tiny_models, tmp_path):
    out = tmp_path / "dna.jsonl"
    args = ["extract", str(tiny_models["parent"]), str(tiny_models["gpt2"]), *TINY, "-o", str(out)]
    result = runner.invoke(main, args)
    assert result.exit_code == 0, result.output
    lines = out.read_text().splitlines()
    assert [json.loads(line)["model_id"] for line in lines] == ["parent", "gpt2"]
    assert [r.model_id for r in read_records(out)] == ["parent", "gpt2"]


def test_responses_file_and_sampling_flags(runner, tiny_models, tmp_path):
    responses = tmp_path / "r.jsonl"
    responses.write_text("".join(json.dumps({"probe": i, "response": f"text {i}"}) + "\n" for i in range(6)))
    result = runner.invoke(main, ["extract", "api-model", "--responses", str(responses), *TINY])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["generation"]["backend"] == "responses-file"
    result = runner.invoke(main, ["extract", str(tiny_models["gpt2"]), *TINY, "--paper"])
    assert json.loads(result.stdout)["generation"]["sampling"] is True


@pytest.mark.parametrize("case, message", [
    ("missing", "no such model path"),
    ("bert", "not a causal language model"),
    ("remote", "--trust-remote-code"),
    ("corrupt_gguf", "not a readable GGUF file"),
    ("empty_responses", "no responses"),
])
def test_bad_input_is_one_line_exit_1_and_no_output(runner, bad_model_dirs, tmp_path, case, message):
    out = tmp_path / "out.json"
    if case == "empty_responses":
        empty = tmp_path / "empty.jsonl"
        empty.write_text("")
        args = ["extract", "m", "--responses", str(empty)]
    else:
        args = ["extract", str(bad_model_dirs.get(case, tmp_path / "nope"))]
    result = runner.invoke(main, [*args, *TINY, "-o", str(out)])
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: ") and message in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.output
    assert not out.exists() and not list(tmp_path.glob(".out.json*"))


def test_subprocess_python_m_hf_dna(tiny_models, tmp_path):
    out = tmp_path / "child.json"
    env = {**os.environ, "HF_DNA_CACHE": str(tmp_path / "cache"), "SOURCE_DATE_EPOCH": "0"}
    cmd = [sys.executable, "-m", "hf_dna", "extract", str(tiny_models["child"]), *TINY, "-o", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    record = read_records(out)[0]
    assert record.model_id == "child" and record.created_at.startswith("1970-01-01")
    bad = subprocess.run([*cmd[:4], str(tmp_path / "nope"), "-q"], capture_output=True, text=True, env=env, timeout=300)
    assert bad.returncode == 1 and bad.stderr.startswith("Error: no such model path")
