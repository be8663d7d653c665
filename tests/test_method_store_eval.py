"""bench/method_store_eval.py: its fusion and family-assignment rules, and a run on the embedded store."""
from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parents[1] / "bench" / "method_store_eval.py"
spec = importlib.util.spec_from_file_location("method_store_eval", BENCH)
mse = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mse)


def test_family_lomo_counts_only_models_with_a_peer_and_uses_the_best_members():
    fam = np.array(["a", "a", "b", "b", "c"], dtype=object)
    score = np.full((5, 5), 0.0)
    score[0, 1] = score[1, 0] = 0.9  # a's pair is close
    score[2, 0] = 0.8  # b's first member is nearest to an a
    score[2, 3] = score[3, 2] = 0.5
    acc, n = mse.family_lomo(score, fam, np.arange(5), top=1)
    assert n == 4  # the lone c is not a query
    assert acc == 0.75  # model 2 is assigned to family a
    acc2, _ = mse.family_lomo(score, fam, np.arange(5), top=2)
    assert acc2 == 1.0  # with two members averaged, a scores (0.8 + 0) / 2 < b's 0.5 for model 2


def test_rank_fusion_keeps_a_pair_that_is_nearest_in_every_kind_on_top():
    rng = np.random.default_rng(0)
    sims = [rng.random((6, 6)) for _ in range(3)]
    for s in sims:
        s[0, 5] = s[5, 0] = 2.0
        np.fill_diagonal(s, np.nan)
    fused = mse.rank_fused(sims)
    assert fused[0].argmax() == 5 and fused[5].argmax() == 0
    assert np.allclose(fused, fused.T)


def test_run_on_the_embedded_store_prints_every_row(tmp_path):
    out = tmp_path / "r.json"
    run = subprocess.run([sys.executable, str(BENCH), "--store", "paper600-50", "--folds", "3", "--json", str(out)],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    import json

    results = json.loads(out.read_text())["results"]
    model = next(v for k, v in results.items() if k.startswith("relation model"))
    assert 0.55 < model["auc"] < 1 and model["top1"] > 0.3  # the held-out relation model beats chance clearly
    assert any(k.startswith("anchor") for k in results) == mse.PAPER_DNAS.exists()


def test_a_directory_that_is_not_a_store_is_one_line_and_exit_1(tmp_path):
    run = subprocess.run([sys.executable, str(BENCH), "--store", str(tmp_path)], capture_output=True, text=True)
    assert run.returncode == 1 and run.stderr.strip().count("\n") == 0 and "not a store" in run.stderr
