"""bench/adaptive_eval.py: the stop-point rule and the stop decision per card."""
from __future__ import annotations

import importlib.util
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench" / "adaptive_eval.py"
spec = importlib.util.spec_from_file_location("adaptive_eval", BENCH)
ae = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ae)


def summaries(lost_from: float | None) -> dict[str, dict]:
    """Per grid point: undeclared-base lost from `lost_from` up (None: never)."""
    return {str(b): {"lost_undeclared": int(lost_from is not None and b >= lost_from), "added_undeclared": 0}
            for b in ae.GRID}


def test_stop_point_is_one_step_below_the_highest_clean_point_under_every_protocol():
    assert ae.choose_stop_point({"model": summaries(0.8), "family": summaries(0.7)}) == 0.5
    assert ae.choose_stop_point({"model": summaries(None)}) == ae.GRID[-2]
    assert ae.choose_stop_point({"model": summaries(ae.GRID[0])}) is None  # even the lowest point loses one
    assert ae.choose_stop_point({"model": summaries(ae.GRID[1])}) is None  # no step left below the clean one


def test_a_card_stops_only_below_the_point_and_then_keeps_the_small_verdict():
    rows = [{"small_confidence": 0.3, "small_fired": [], "full_fired": ["undeclared-base"], "card": "omit"},
            {"small_confidence": 0.7, "small_fired": [], "full_fired": ["undeclared-base"], "card": "omit"},
            {"small_confidence": None, "small_fired": [], "full_fired": [], "card": "honest"}]
    out = ae.adaptive(rows, 0.5)
    assert [o["stopped"] for o in out] == [True, False, False]
    assert [o["fired"] for o in out] == [[], ["undeclared-base"], []]
    assert all(not o["stopped"] for o in ae.adaptive(rows, None))
