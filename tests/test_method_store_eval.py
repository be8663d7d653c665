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
    by_model = next(v for k, v in results.items() if k.startswith("relation model, CV by model"))
    assert 0.55 < by_model["auc"] < 1 and by_model["top1"] > 0.3
    assert any(k.startswith("anchor") for k in results) == mse.PAPER_DNAS.exists()


def test_a_directory_that_is_not_a_store_is_one_line_and_exit_1(tmp_path):
    run = subprocess.run([sys.executable, str(BENCH), "--store", str(tmp_path)], capture_output=True, text=True)
    assert run.returncode == 1 and run.stderr.strip().count("\n") == 0 and "not a store" in run.stderr


def test_family_features_leave_the_query_out_and_mark_families_without_members():
    fam = np.array(["a", "a", "a", "b", "c"], dtype=object)
    score = np.array([[np.nan, .9, .1, .5, .2], [.9, np.nan, .3, .4, .2], [.1, .3, np.nan, .2, .8],
                      [.5, .4, .2, np.nan, .1], [.2, .2, .8, .1, np.nan]])
    rows = np.arange(4)  # c is not a candidate
    x = mse.family_features(score, fam, rows, 0, ["a", "b", "c"])
    assert np.isnan(x[2]).all()  # no c among the rows
    assert np.isclose(x[0, 4], np.log(2)) and np.isclose(x[1, 4], 0.0)  # a without the query itself: 2 members
    assert x[0, 0] > x[1, 0]  # a's best member (0.9) beats b's (0.5)
    assert x[0, 5] == 0.0  # a holds the query's nearest model: log1p(rank 0)


def test_family_ranker_learns_which_feature_names_the_family():
    rng = np.random.default_rng(1)
    cases = [rng.normal(size=(6, 7)) for _ in range(120)]
    targets = [int(np.argmax(x[:, 3])) for x in cases]  # the family with the best mean is always right
    w = mse.fit_family_ranker(cases[:80], targets[:80])
    right = [int(np.argmax(x @ w)) == t for x, t in zip(cases[80:], targets[80:])]
    assert np.mean(right) > 0.8 and abs(w[3]) == np.abs(w).max()
