"""bench/audit_eval.py's choice of a store's operating point (the artifact the audit's default comes from)."""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest


def _load_audit_eval():
    """The bench script as a module, without the OMP_NUM_THREADS=1 it sets for its own runs leaking into the suite."""
    before = os.environ.get("OMP_NUM_THREADS")
    spec = importlib.util.spec_from_file_location("audit_eval", Path(__file__).resolve().parents[1] / "bench" / "audit_eval.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if before is None:
        os.environ.pop("OMP_NUM_THREADS", None)
    return module


audit_eval = _load_audit_eval()
GRID, choose_operating_point = audit_eval.GRID, audit_eval.choose_operating_point


def summaries(false_at: set[float]) -> dict[float, dict]:
    return {q: {"cards": {"honest": {"false_undeclared_high": int(q in false_at)}}} for q in GRID}


@pytest.mark.parametrize(("model_refit", "family_refit", "chosen"), [
    (set(), set(), 0.55),                 # clean everywhere: one step above the lowest
    ({0.5}, set(), 0.6),                  # a false flag under one protocol counts
    (set(), {0.5, 0.7}, 0.8),             # clean at and above 0.75, plus the margin
    ({0.9}, set(), 0.95),                 # clean only at 0.95: no step above it, stays there
    ({0.95}, set(), 0.95),                # nothing clean: the default
])
def test_one_step_above_the_lowest_point_clean_at_and_above(model_refit, family_refit, chosen):
    assert choose_operating_point({"model": summaries(model_refit), "family": summaries(family_refit)}) == chosen
