"""The fitted weight-evidence calibration (hf_dna/evidence/weight_calibration.json): it loads and is sane, a refit from
its stored pairs reproduces it, and on a small family from an init the fit never saw, a fine-tune scores above the
decision point against its source while another init of the same shapes scores below."""
from __future__ import annotations

import copy
import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest

from hf_dna.evidence import weight_calibration as C
from hf_dna.evidence import weights as W

ROOT = Path(__file__).resolve().parents[1]


def _script():
    spec = importlib.util.spec_from_file_location("fit_weight_calibration", ROOT / "scripts" / "fit_weight_calibration.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_packaged_calibration_loads_and_is_sane():
    cal = C.load()
    assert cal["features"] == list(C.FEATURES)
    assert all(math.isfinite(v) for v in [*cal["coefficients"], cal["intercept"]])
    assert all(w > 0 for w in cal["coefficients"])  # more correlation, more related
    lo, hi = cal["logit_range"]["unrelated"], cal["logit_range"]["related"]
    assert lo[0] <= lo[1] < cal["decision"]["logit"] < hi[0] <= hi[1]
    assert cal["decision"]["p"] == pytest.approx(1 / (1 + math.exp(-cal["decision"]["logit"])))
    fit = cal["fit"]
    assert fit["pairs"] == fit["related"] + fit["unrelated"] == len(cal["pairs"]["related"]) + \
        len(cal["pairs"]["unrelated"]) >= 1000
    assert fit["auc"] == 1.0 and fit["false_positives"] == 0 and fit["misses"] == 0 and fit["logit_margin"] > 0
    assert "scripts/fit_weight_calibration.py" in cal["provenance"]["command"]
    assert W.compare_sketches.__doc__ and "p_related" in W.compare_sketches.__doc__


def test_refit_from_the_stored_pairs_reproduces_the_decision_point():
    cal = C.load()
    refit = _script().fit_stored(cal)
    assert refit["decision"]["logit"] == pytest.approx(cal["decision"]["logit"], abs=1e-6)
    np.testing.assert_allclose(refit["coefficients"], cal["coefficients"], atol=1e-6)
    assert refit["fit"]["auc"] == cal["fit"]["auc"]
    # a fifth of the pairs: the same decision in P within 0.1, still no false positive on all of them
    small = C.fit(np.array(cal["pairs"]["related"][::5]), np.array(cal["pairs"]["unrelated"][::5]))
    assert abs(small["decision"]["p"] - cal["decision"]["p"]) < 0.1
    unrelated = np.array(cal["pairs"]["unrelated"]) @ small["coefficients"] + small["intercept"]
    related = np.array(cal["pairs"]["related"]) @ small["coefficients"] + small["intercept"]
    assert unrelated.max() < small["decision"]["logit"] < related.min()


# ---- a small family from an init the fit did not see ------------------------------------------------------------------
@pytest.fixture(scope="module")
def held_out(tmp_path_factory) -> dict[str, dict]:
    import torch

    from tests.test_weight_sketch import merged_lora, save, tiny_llama, train

    root = tmp_path_factory.mktemp("held-out-family")
    with torch.random.fork_rng():
        base = train(tiny_llama(41), 30, 3e-3)
        models = {"base": base, "finetune": train(copy.deepcopy(base), 20, 1e-3, data_seed=5),
                  "lora": merged_lora(base, steps=5), "other-init": train(tiny_llama(141), 30, 3e-3)}
        paths = {name: save(m, root / name, dtype="bfloat16" if name == "finetune" else None)
                 for name, m in models.items()}
    return {name: W.sketch_files(path) for name, path in paths.items()}


@pytest.mark.parametrize("name", ["finetune", "lora"])
def test_a_derived_model_scores_above_the_decision_point(held_out, name):
    result = W.compare_sketches(held_out["base"], held_out[name])
    assert result["p_related"] > result["p_decision"] == C.load()["decision"]["p"]
    assert result["relation"] == "close", result["note"]


def test_another_init_of_the_same_shapes_scores_below(held_out):
    result = W.compare_sketches(held_out["base"], held_out["other-init"])
    assert result["tensors_compared"] >= 20
    assert result["p_related"] < result["p_decision"] and result["relation"] == "unrelated"
    assert result["p_related"] < 0.05


def test_the_verdict_follows_the_calibration_it_is_given(held_out):
    """The decision point, not a hand-set cut, decides: move it above the fine-tune's score and it reads unrelated."""
    cal = C.load()
    x = W.pair_features(held_out["base"], held_out["finetune"])
    moved = dict(cal, decision={"logit": C.logit(cal, x) + 0.1, "p": 0.0})
    assert W.compare_sketches(held_out["base"], held_out["finetune"], calibration=moved)["relation"] == "unrelated"


def test_too_few_comparable_tensors_give_no_evidence_never_unrelated(held_out):
    few = copy.deepcopy(held_out["other-init"])
    few["tensors"] = {k: v for k, v in list(few["tensors"].items())[:W.MIN_TENSORS - 1]}
    result = W.compare_sketches(held_out["base"], few)
    assert result["relation"] is None and result["p_related"] is None
    assert result["tensors_compared"] == W.MIN_TENSORS - 1 and result["note"].startswith("no weight evidence")
    assert W.pair_features(held_out["base"], few) is None


def test_held_out_pairs_refit_close_to_the_stored_decision_point(held_out):
    cal = C.load()
    names = list(held_out)
    related = [W.pair_features(held_out[a], held_out[b]) for a in names for b in names
               if a < b and "other-init" not in (a, b)]
    unrelated = [W.pair_features(held_out[a], held_out["other-init"]) for a in names if a != "other-init"]
    refit = C.fit(np.r_[np.array(cal["pairs"]["related"]), related],
                  np.r_[np.array(cal["pairs"]["unrelated"]), unrelated])
    assert abs(refit["decision"]["p"] - cal["decision"]["p"]) < 0.05 and refit["fit"]["false_positives"] == 0
