"""Flag precision/recall of `hf-dna audit` on planted model cards, leave-one-model-out over a reference store.

For every labelled (high/medium confidence) model M of the store: M is removed from the reference, the relation
model is refitted on the rest (so M's own pairs never calibrate its verdict), and M's real DNA is audited with
three planted cards:

- ``honest``: the card declares M's real parent(s) and relation (nothing for base models) -> expect no flag;
- ``omit``: a derived model (finetune/quantized/merge/...) whose card declares nothing, where the reference holds
  at least one relative of M that is not M's descendant -> expect ``undeclared-base``;
- ``wrong``: the card names a base model of another family, present in the reference -> expect
  ``unsupported-base`` (``undeclared-base`` is then also right when M has relatives in the reference).

Peer run: the same protocol with the records stripped of their extra evidence vectors (the paper's DNA alone).

Usage: python bench/audit_eval.py [STORE_DIR ...] [--peer/--no-peer] [--json OUT] [--results bench/RESULTS.md]
       [--write-operating-point]
(default: every embedded store under hf_dna/data/reference/).

`--write-operating-point` measures each store with both refit protocols (without the held-out model, and without
its whole family) on the grid 0.50, 0.55, ..., 0.95 and writes into the store's calibration.json, as the audit's
default for that store, one grid step above the lowest relative posterior at which, under both, neither it nor
any higher grid point raises a false undeclared-base on an honest card of a high-confidence model (the step is a
margin against choosing on the very cards it is measured on; 0.95 at most, and 0.95 when no point is clean).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hf_dna.audit import FLAG_CODES, RELATIVE_POSTERIOR, Declared, decision_points, judge
from hf_dna.audit.decision import operating_point
from hf_dna.audit.verdict import DERIVED_RELATIONS
from hf_dna.evidence.lineage import same_model  # noqa: E402
from hf_dna.evidence.relation import RelationModel  # noqa: E402
from hf_dna.reference import CALIBRATION_NAME, ReferenceStore, default_store_dirs  # noqa: E402
from hf_dna.reference.layout import OPERATING_POINT  # noqa: E402

GOOD = ("high", "medium")
SECTION = "audit-eval"


def parents_of(info: dict) -> list[str]:
    return [p.strip() for p in (info.get("parent") or "").split(";") if p.strip()]


def planted_cards(store: ReferenceStore, model_id: str, rng: np.random.Generator) -> dict[str, tuple[Declared, set]]:
    """card name -> (declared lineage, expected flag codes) for one held-out model."""
    info = store.lineage(model_id) or {}
    family, relation = info.get("family", ""), info.get("relation", "")
    others = [r.model_id for r in store.records if not same_model(r.model_id, model_id)]  # its own API variants too
    fam = {m: (store.lineage(m) or {}) for m in others}
    descendants = {m for m in others if model_id in parents_of(fam[m])}
    relatives = [m for m in others if fam[m].get("family") == family and m not in descendants]
    derived = relation in DERIVED_RELATIONS and parents_of(info)
    cards = {}
    if derived:
        cards["honest"] = (Declared(parents_of(info), relation, "card", True), set())
    elif relation == "base":
        cards["honest"] = (Declared(), set())
    if derived and relatives:
        cards["omit"] = (Declared(), {"undeclared-base"})
    strangers = [m for m in others if fam[m].get("family") not in ("", family, "unknown")
                 and fam[m].get("confidence") in GOOD]
    roots = [m for m in strangers if fam[m].get("relation") == "base"] or strangers
    if roots:
        wrong = roots[int(rng.integers(len(roots)))]
        expected = {"unsupported-base"} | ({"undeclared-base"} if relatives else set())
        cards["wrong"] = (Declared([wrong], None, "card", False), expected)
    return cards


def strip_evidence(store: ReferenceStore) -> ReferenceStore:
    records = [replace(r, evidence={}) for r in store.records]
    return ReferenceStore(records, config=store.config, lineage=store.lineage_table, calibration=None)


def calibration_without(store: ReferenceStore, record, refit: str, cache: dict) -> dict:
    """The relation model fitted without `record` (refit=model) or without its whole family (refit=family)."""
    if refit == "model":
        return RelationModel.fit([r for r in store.records if r.model_id != record.model_id], store.lineage_table,
                                 measure=False).to_dict()
    family = (store.lineage(record.model_id) or {}).get("family")
    if family not in cache:
        train = [r for r in store.records if (store.lineage(r.model_id) or {}).get("family") != family]
        cache[family] = RelationModel.fit(train, store.lineage_table, measure=False).to_dict()
    return cache[family]


def held_out_store(store: ReferenceStore, record, refit: str, cache: dict) -> ReferenceStore:
    """`store` without `record`, calibrated by `calibration_without`, its decision points fitted now (so that
    judging time is judging)."""
    calibration = calibration_without(store, record, refit, cache)
    rest = [r for r in store.records if r.model_id != record.model_id]
    held_out = ReferenceStore(rest, config=store.config, lineage=store.lineage_table, calibration=calibration)
    decision_points(held_out, RelationModel.from_dict(calibration))
    return held_out


def evaluate(store: ReferenceStore, seed: int = 0, refit: str = "model", posteriors: tuple[float, ...] = (0.5,)) -> dict:
    """Run every planted card of every labelled model; returns per-card outcomes and summary metrics."""
    rng = np.random.default_rng(seed)
    labelled = [r for r in store.records if (store.lineage(r.model_id) or {}).get("confidence") in GOOD
                and (store.lineage(r.model_id) or {}).get("family") not in ("", "unknown")]
    outcomes, t_fit, t_judge, cache = [], 0.0, 0.0, {}
    for record in labelled:
        t0 = time.perf_counter()
        held_out = held_out_store(store, record, refit, cache)
        t_fit += time.perf_counter() - t0
        info = store.lineage(record.model_id) or {}
        for card, (declared, expected) in planted_cards(store, record.model_id, rng).items():
            t0 = time.perf_counter()
            verdict = judge(record.model_id, record, declared, held_out, relative_posterior=min(posteriors))
            t_judge += time.perf_counter() - t0
            fired = [f.code for f in verdict.flags]
            undeclared = next((f for f in verdict.flags if f.code == "undeclared-base"), None)
            top_family = undeclared.evidence["relatives"][0]["family"] if undeclared else None
            outcomes.append({"undeclared_by_weights": bool(undeclared) and undeclared.evidence["decided_by"] == "weights",
                             "undeclared_confidence": undeclared.evidence["family_confidence"] if undeclared else None,
                             "model": record.model_id, "card": card, "confidence": info.get("confidence"),
                             "relation": info.get("relation"), "family": info.get("family"),
                             "declared": declared.base_models, "expected": sorted(expected), "fired": fired,
                             "undeclared_names_right_family": top_family == info.get("family") if top_family else None,
                             "nearest": [(n.model_id, n.probability) for n in verdict.nearest[:3]]})
    by_posterior = {q: summarise([at_posterior(o, q) for o in outcomes]) for q in posteriors}
    return {"outcomes": outcomes, "summary": by_posterior[RELATIVE_POSTERIOR if RELATIVE_POSTERIOR in posteriors
                                                          else posteriors[-1]],
            "by_posterior": by_posterior, "n_models": len(store.records),
            "n_labelled": len(labelled), "fit_s": t_fit, "judge_ms": 1000 * t_judge / max(len(outcomes), 1)}


def at_posterior(outcome: dict, posterior: float) -> dict:
    """The outcome as it would be with the relative decision point at `posterior` (others flags unchanged)."""
    fired = [c for c in outcome["fired"] if c != "undeclared-base"]
    sure = outcome["undeclared_confidence"]
    if outcome["undeclared_by_weights"] or (sure is not None and sure >= posterior):
        fired.insert(0, "undeclared-base")
    return {**outcome, "fired": fired,
            "undeclared_names_right_family": outcome["undeclared_names_right_family"] if "undeclared-base" in fired else None}


def summarise(outcomes: list[dict]) -> dict:
    """Recall per card type, precision per flag code, false flags on honest cards."""
    out: dict = {"cards": {}, "codes": {}}
    for card in ("honest", "omit", "wrong"):
        rows = [o for o in outcomes if o["card"] == card]
        if card == "honest":
            hit = [not o["fired"] for o in rows]
        else:
            hit = [bool(set(o["expected"]) & set(o["fired"])) for o in rows]
        main = {"omit": "undeclared-base", "wrong": "unsupported-base"}.get(card)
        main_hit = [main in o["fired"] for o in rows] if main else hit
        out["cards"][card] = {"n": len(rows), "as_expected": float(np.mean(hit)) if rows else float("nan"),
                              "main_flag_rate": float(np.mean(main_hit)) if rows else float("nan")}
    honest = [o for o in outcomes if o["card"] == "honest"]
    for conf in ("high", "medium"):
        rows = [o for o in honest if o["confidence"] == conf]
        out["cards"]["honest"][f"false_undeclared_{conf}"] = sum("undeclared-base" in o["fired"] for o in rows)
        out["cards"]["honest"][f"n_{conf}"] = len(rows)
    for split, rows in (("derived", [o for o in honest if o["declared"]]), ("base", [o for o in honest if not o["declared"]])):
        out["cards"]["honest"][f"false_any_{split}"] = sum(bool(o["fired"]) for o in rows)
        out["cards"]["honest"][f"n_{split}"] = len(rows)
    for code in FLAG_CODES:
        fired = [o for o in outcomes if code in o["fired"]]
        expected = [o for o in outcomes if code in o["expected"]]
        tp = sum(code in o["expected"] for o in fired)
        out["codes"][code] = {"fired": len(fired), "expected": len(expected),
                              "precision": tp / len(fired) if fired else float("nan"),
                              "recall": sum(code in o["fired"] for o in expected) / len(expected) if expected else float("nan")}
    named = [o["undeclared_names_right_family"] for o in outcomes if o["card"] == "omit" and o["undeclared_names_right_family"] is not None]
    out["omit_flag_names_right_family"] = float(np.mean(named)) if named else float("nan")
    return out


DEFAULT_MARK = " (the store's default)"


def table(results: dict[str, dict]) -> str:
    """Markdown table: one row per (store, evidence, relative posterior) run."""
    head = ("| store | evidence | relative posterior | models (labelled) | honest: no flag | false undeclared-base on honest (high / medium) "
            "| omit -> undeclared-base (recall) | ...names right family | wrong -> unsupported-base (recall) "
            "| undeclared-base precision | unsupported-base precision | judge ms/card |")
    rows = [head, "|" + "---|" * (head.count("|") - 1)]
    runs = [(name, posterior, summary) for name, res in results.items() for posterior, summary in res["by_posterior"].items()]
    for name, posterior, s in runs:
        res, c, k = results[name], s["cards"], s["codes"]
        rows.append(
            f"| {name.split(' [')[0]} | {name.split(' [')[1].rstrip(']')} | {posterior}"
            f"{DEFAULT_MARK if posterior == res.get('operating_point') else ''} "
            f"| {res['n_models']} ({res['n_labelled']}) "
            f"| {c['honest']['as_expected']:.2f} (n={c['honest']['n']}) "
            f"| {c['honest']['false_undeclared_high']}/{c['honest']['n_high']} / "
            f"{c['honest']['false_undeclared_medium']}/{c['honest']['n_medium']} "
            f"| {c['omit']['main_flag_rate']:.2f} (n={c['omit']['n']}) | {s['omit_flag_names_right_family']:.2f} "
            f"| {c['wrong']['main_flag_rate']:.2f} (n={c['wrong']['n']}) "
            f"| {k['undeclared-base']['precision']:.2f} | {k['unsupported-base']['precision']:.2f} "
            f"| {res['judge_ms']:.1f} |")
    return "\n".join(rows)


def write_section(path: Path, body: str, section: str = SECTION) -> None:
    """Replace (or append) this script's section of RESULTS.md, between markers; other sections stay."""
    start, end = f"<!-- {section}:start -->", f"<!-- {section}:end -->"
    text = path.read_text(encoding="utf-8") if path.is_file() else "# Benchmark results\n"
    block = f"{start}\n{body.strip()}\n{end}"
    if start in text and end in text:
        text = text[: text.index(start)] + block + text[text.index(end) + len(end):]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    from hf_dna._io import atomic_write_text

    atomic_write_text(path, text)


def hardware() -> str:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} vCPU (shared, load {load:.1f}), CPU only"


GRID = tuple(round(0.5 + 0.05 * i, 2) for i in range(10))


def choose_operating_point(by_protocol: dict[str, dict[float, dict]]) -> float:
    """One grid step above the lowest grid posterior at and above which no protocol gives a false undeclared-base
    on an honest card of a high-confidence model (at most, and when even the top of the grid does,
    `RELATIVE_POSTERIOR`)."""
    grid = sorted(GRID)

    def clean(q: float) -> bool:
        return not any(s[q]["cards"]["honest"]["false_undeclared_high"] for s in by_protocol.values())

    lowest = next((i for i in range(len(grid)) if all(map(clean, grid[i:]))), None)
    if lowest is None:
        return RELATIVE_POSTERIOR
    return min(grid[min(lowest + 1, len(grid) - 1)], RELATIVE_POSTERIOR)


def write_operating_point(directory: Path, by_protocol: dict[str, dict[float, dict]], command: str) -> dict:
    """Put the chosen operating point, and what was measured at it, into the store's calibration.json."""
    path = directory / CALIBRATION_NAME
    calibration = json.loads(path.read_text(encoding="utf-8"))
    q = choose_operating_point(by_protocol)
    measured = {protocol: {"false_undeclared_high": s[q]["cards"]["honest"]["false_undeclared_high"],
                           "n_honest_high": s[q]["cards"]["honest"]["n_high"],
                           "false_undeclared_medium": s[q]["cards"]["honest"]["false_undeclared_medium"],
                           "n_honest_medium": s[q]["cards"]["honest"]["n_medium"],
                           "omit_recall": round(s[q]["cards"]["omit"]["main_flag_rate"], 3),
                           "n_omit": s[q]["cards"]["omit"]["n"]} for protocol, s in by_protocol.items()}
    calibration[OPERATING_POINT] = {
        "relative_posterior": q,
        "rule": "one 0.05 step above the lowest of 0.50..0.95 with no false undeclared-base on held-out honest "
                "high-confidence cards at it or above, refitted without the model or its family (bench/audit_eval.py)",
        "measured": measured, "date": time.strftime("%Y-%m-%d"), "command": command}
    path.write_text(json.dumps(calibration, indent=2) + "\n", encoding="utf-8")
    return calibration[OPERATING_POINT]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stores", nargs="*", help="store dirs (default: the embedded ones)")
    parser.add_argument("--no-peer", action="store_true", help="skip the DNA-only peer run")
    parser.add_argument("--refit", choices=["model", "family"], default="model",
                        help="refit the relation model without the held-out model, or without its whole family")
    parser.add_argument("--posteriors", default="0.5,0.8,0.9,0.95",
                        help="relative-decision posterior targets to report (the first run is at the lowest)")
    parser.add_argument("--json", default="bench/out/audit_eval.json")
    parser.add_argument("--results", default="bench/RESULTS.md")
    parser.add_argument("--write-operating-point", action="store_true",
                        help="measure both refit protocols on the 0.50..0.95 grid and write each store's operating "
                             "point into its calibration.json (see the module doc)")
    args = parser.parse_args(argv)
    if args.write_operating_point:
        command = "python bench/audit_eval.py " + " ".join(argv if argv is not None else sys.argv[1:])
        for directory in [Path(d) for d in args.stores] or default_store_dirs():
            store = ReferenceStore.load(directory)
            by_protocol = {f"refit without the {refit}": evaluate(store, refit=refit, posteriors=GRID)["by_posterior"]
                           for refit in ("model", "family")}
            Path(args.json).parent.mkdir(parents=True, exist_ok=True)
            Path(args.json).with_name(f"operating-point-{directory.name}.json").write_text(
                json.dumps(by_protocol, indent=1, default=str))
            point = write_operating_point(directory, by_protocol, command)
            print(f"{directory.name}: operating point {point['relative_posterior']}: {json.dumps(point['measured'])}")
        return 0
    dirs = [Path(d) for d in args.stores] or default_store_dirs()
    results: dict[str, dict] = {}
    t_all = time.perf_counter()
    for directory in dirs:
        store = ReferenceStore.load(directory)
        name = f"{store.config.get('probe_set')} ({store.config.get('n_probes')} probes)"
        runs = [("all evidence", store)] + ([] if args.no_peer else [("DNA only (peer)", strip_evidence(store))])
        for label, variant in runs:
            t0 = time.perf_counter()
            res = evaluate(variant, refit=args.refit,
                           posteriors=tuple(sorted(float(q) for q in args.posteriors.split(","))))
            res["wall_s"] = time.perf_counter() - t0
            res["operating_point"] = operating_point(store)[0]
            results[f"{name} [{label}]"] = res
            s = res["by_posterior"].get(res["operating_point"], res["summary"])  # at the store's default if run
            print(f"{name} [{label}]: {res['n_labelled']} labelled, honest ok {s['cards']['honest']['as_expected']:.2f}, "
                  f"omit recall {s['cards']['omit']['main_flag_rate']:.2f}, wrong recall "
                  f"{s['cards']['wrong']['main_flag_rate']:.2f}, false undeclared (high) "
                  f"{s['cards']['honest']['false_undeclared_high']}, {res['wall_s']:.0f}s", flush=True)
        if not args.no_peer:
            full, peer = results[f"{name} [all evidence]"], results[f"{name} [DNA only (peer)]"]
            ours, theirs = (r["by_posterior"].get(r["operating_point"], r["summary"])["cards"]["omit"]["main_flag_rate"]
                            for r in (full, peer))
            ratio = f"{ours / theirs:.2f}" if theirs else f"inf ({ours:.2f} vs 0)"
            print(f"{name}: omit recall ratio all-evidence / DNA-only = {ratio}")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(results, indent=1, default=str))
    body = (f"## Audit flags on planted cards (bench/audit_eval.py)\n\n"
            f"Leave-one-model-out over each reference: the held-out model leaves the reference and the "
            f"relation model is refitted without {'it' if args.refit == 'model' else 'its whole family'}. Cards: honest (true parent + relation; nothing for bases), "
            f"omit (derived model, nothing declared, a relative in the reference), wrong (a base of another "
            f"family). Hardware: {hardware()}; total {time.perf_counter() - t_all:.0f} s.\n\n{table(results)}\n")
    write_section(Path(args.results), body)
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
