"""`accelerate launch -m hf_dna extract` with 2 CPU processes gives the single-process records."""
from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from hf_dna.pipeline.extract import extract
from hf_dna.pipeline.responses import GenerationSettings
from hf_dna.pipeline.record import read_records

PROBES = "rand-en-12"
# 12 probes -> 3 batches over 2 processes; float32: the exact-equality check below must not hinge on bf16 rounding
SETTINGS = GenerationSettings(max_new_tokens=8, batch_size=4, dtype="float32")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(models: list[str], out, tmp_path) -> subprocess.CompletedProcess:
    # on a CPU-only machine `--multi_gpu` is what starts N torch.distributed (gloo) processes
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           "--main_process_port", str(_free_port()), "-m", "hf_dna", "extract", *models, "--probes", PROBES,
           "--max-new-tokens", "8", "--batch-size", "4", "--dtype", "float32", "-o", str(out)]
    env = {**os.environ, "HF_DNA_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=400)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.mark.parametrize("names, spread", [(["parent"], "generation batches"), (["parent", "gpt2"], "models")])
def test_two_processes_equal_one(tiny_models, tmp_path, names, spread, monkeypatch):
    paths = [str(tiny_models[n]) for n in names]
    out = tmp_path / "dna.json"
    done = _launch(paths, out, tmp_path)
    assert f"spreading {spread} over 2 processes" in done.stderr
    distributed = read_records(out)
    # each launched process runs one torch thread (2 cores / 2 processes); float32 sums depend on the thread count
    monkeypatch.setenv("HF_DNA_NUM_THREADS", "1")
    single = [extract(p, PROBES, settings=SETTINGS, use_cache=False, progress=False) for p in paths]
    assert [r.model_id for r in distributed] == names
    assert [r.dna for r in distributed] == [r.dna for r in single]
    assert [r.generation for r in distributed] == [r.generation for r in single]
    if spread == "generation batches":  # both processes wrote their batches to the shared cache
        assert len(list((tmp_path / "cache").rglob("batch-*.json"))) == 3
