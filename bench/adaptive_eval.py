"""Ask more probes only while the verdict is unsure: what stopping after the first probes would cost.

For every labelled model of a pair of nested reference stores (the small one built with the first k probes of the
full one, e.g. paper600-50 inside paper600-100; same models, same responses), each planted card of
`bench/audit_eval.py` is judged twice, on the small store and on the full one, each at its store's own operating
point, with the held-out model's relation model refitted without it (`--refit model`) or without its family
(`--refit family`). An adaptive audit stops after the small store's probes when the behavioural family
confidence there is below a stop point b, keeping the small store's verdict, else it asks the rest and takes the
full store's verdict. For each b on a grid: the share of audits that stop
early, how often their flags differ from the full-probe verdict, and the planted-card figures of the adaptive
audit next to the always-full one (the peer, same run).

`--write-stop-point` writes into the full store's calibration.json (key `early_stop`, read by
`hf-dna audit --adaptive`) one grid step below the highest b at which, under every protocol run, neither it nor any
lower grid point loses an undeclared-base the full audit raises on an omitted card or adds a false one on an honest
card (a margin against choosing on the very cards it is measured on; no entry when even the lowest point loses one).

Usage: python bench/adaptive_eval.py [--small paper600-50] [--full paper600-100] [--refit model family]
       [--json OUT] [--rows EARLIER_JSON] [--write-stop-point]
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("OMP_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hf_dna.audit import judge  # noqa: E402
from hf_dna.audit.decision import operating_point  # noqa: E402
from hf_dna.reference import CALIBRATION_NAME, ReferenceStore  # noqa: E402
from hf_dna.reference.layout import EARLY_STOP  # noqa: E402

spec = importlib.util.spec_from_file_location("audit_eval", ROOT / "bench" / "audit_eval.py")
audit_eval = importlib.util.module_from_spec(spec)
spec.loader.exec_module(audit_eval)

GRID = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


def store_dir(name: str) -> Path:
    return Path(name) if Path(name).is_dir() else ROOT / "hf_dna" / "data" / "reference" / name


def judged(stores: dict[str, ReferenceStore], refit: str, seed: int = 0, limit: int | None = None) -> list[dict]:
    """Every planted card of every labelled model judged on each store: flags and family confidence."""
    full = stores["full"]
    rng = np.random.default_rng(seed)
    records = {name: {r.model_id: r for r in s.records} for name, s in stores.items()}
    caches: dict[str, dict] = {"small": {}, "full": {}}
    # each stage flags at its own store's measured point (a refitted calibration does not carry it)
    points = {name: operating_point(s)[0] for name, s in stores.items()}
    out = []
    for record in full.records:
        info = full.lineage(record.model_id) or {}
        if info.get("confidence") not in audit_eval.GOOD or info.get("family") in (None, "", "unknown"):
            continue
        if record.model_id not in records["small"]:
            continue
        if limit is not None and len({r["model"] for r in out}) >= limit:
            break
        refs = {name: audit_eval.held_out_store(stores[name], records[name][record.model_id], refit, caches[name])
                for name in ("small", "full")}
        for card, (declared, expected) in audit_eval.planted_cards(full, record.model_id, rng).items():
            row = {"model": record.model_id, "card": card, "confidence": info.get("confidence"),
                   "declared": declared.base_models, "expected": sorted(expected)}
            for name in ("small", "full"):
                verdict = judge(record.model_id, records[name][record.model_id], declared, refs[name],
                                relative_posterior=points[name])
                row[f"{name}_fired"] = verdict.flag_codes
                row[f"{name}_confidence"] = verdict.family_confidence
                row[f"{name}_top_probability"] = verdict.nearest[0].probability if verdict.nearest else None
            out.append(row)
    return out


STATISTICS = {"family_confidence": "small_confidence", "top_probability": "small_top_probability"}


def adaptive(rows: list[dict], stop: float | None, statistic: str = "family_confidence") -> list[dict]:
    """Each card's outcome under the stop point (None: always the full store): a card stops when the small store's
    `statistic` (the family confidence, or the top candidate's P(related)) is below it."""
    key = STATISTICS[statistic]
    out = []
    for r in rows:
        value = r.get(key)
        early = stop is not None and value is not None and value < stop
        out.append({**r, "fired": r["small_fired"] if early else r["full_fired"], "stopped": early,
                    "undeclared_names_right_family": None})
    return out


def summary(outcomes: list[dict]) -> dict:
    s = audit_eval.summarise(outcomes)
    stopped = [o for o in outcomes if o["stopped"]]
    s["stopped"] = len(stopped) / max(len(outcomes), 1)
    s["stopped_changed"] = sum(set(o["small_fired"]) != set(o["full_fired"]) for o in stopped)
    s["lost_undeclared"] = sum("undeclared-base" in o["full_fired"] and "undeclared-base" not in o["small_fired"]
                               for o in stopped)
    s["added_undeclared"] = sum("undeclared-base" in o["small_fired"] and "undeclared-base" not in o["full_fired"]
                                for o in stopped)
    s["n"] = len(outcomes)
    return s


def keeps_undeclared(s: dict) -> bool:
    """No stopped card lost an undeclared-base the full audit raises, or got one it does not."""
    return s["lost_undeclared"] == 0 and s["added_undeclared"] == 0


def choose_stop_point(by_protocol: dict[str, dict[str, dict]]) -> float | None:
    """One grid step below the highest b clean (`keeps_undeclared`) with every lower point, under every protocol;
    None when the lowest grid point is not clean."""
    def clean(b: float) -> bool:
        return all(keeps_undeclared(s[str(b)]) for s in by_protocol.values())

    highest = None
    for i, b in enumerate(GRID):
        if not clean(b):
            break
        highest = i
    if highest is None or highest == 0:
        return None
    return GRID[highest - 1]


def write_stop_point(full_dir: Path, small: ReferenceStore, b: float, by_protocol: dict[str, dict[str, dict]],
                     command: str) -> dict:
    path = full_dir / CALIBRATION_NAME
    calibration = json.loads(path.read_text(encoding="utf-8"))
    n_small = int(small.config.get("n_probes") or 0)
    measured = {}
    for protocol, s in by_protocol.items():
        at, peer = s[str(b)], s[PEER]
        measured[protocol] = {"stopped": round(at["stopped"], 3), "stopped_cards_with_other_flags": at["stopped_changed"],
                              "undeclared_lost": at["lost_undeclared"], "undeclared_added": at["added_undeclared"],
                              "n_cards": at["n"],
                              "omit_recall": round(at["cards"]["omit"]["main_flag_rate"], 3),
                              "omit_recall_all_probes": round(peer["cards"]["omit"]["main_flag_rate"], 3),
                              "wrong_recall": round(at["cards"]["wrong"]["main_flag_rate"], 3),
                              "wrong_recall_all_probes": round(peer["cards"]["wrong"]["main_flag_rate"], 3)}
    calibration[EARLY_STOP] = {
        "probe_hash": small.config.get("probe_hash"), "n_probes": n_small, "family_confidence_below": b,
        "rule": "one grid step below the highest family confidence at which stopping after these probes lost no "
                "undeclared-base and added none on held-out planted cards, refitted without the model or its family "
                "(bench/adaptive_eval.py)",
        "measured": measured, "date": time.strftime("%Y-%m-%d"), "command": command}
    path.write_text(json.dumps(calibration, indent=2) + "\n", encoding="utf-8")
    return calibration[EARLY_STOP]


PEER = "peer (always all probes)"


def line(label: str, s: dict, small_n: int, full_n: int) -> str:
    c = s["cards"]
    probes = s["stopped"] * small_n + (1 - s["stopped"]) * full_n
    return (f"| {label} | {s['stopped']:.2f} | {probes:.0f} | {s['stopped_changed']} "
            f"({s['lost_undeclared']} / {s['added_undeclared']}) | "
            f"{c['honest']['false_undeclared_high']}/{c['honest']['n_high']} / "
            f"{c['honest']['false_undeclared_medium']}/{c['honest']['n_medium']} | "
            f"{c['omit']['main_flag_rate']:.2f} (n={c['omit']['n']}) | {c['wrong']['main_flag_rate']:.2f} (n={c['wrong']['n']}) |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", default="paper600-50")
    ap.add_argument("--full", default="paper600-100")
    ap.add_argument("--refit", nargs="+", default=["model", "family"], choices=["model", "family"])
    ap.add_argument("--json", help="write the judged cards and the summaries here")
    ap.add_argument("--rows", help="re-use the judged cards of an earlier --json run (same stores)")
    ap.add_argument("--limit", type=int, help="only the first N labelled models (a quick check)")
    ap.add_argument("--statistic", choices=sorted(STATISTICS), default="family_confidence",
                    help="what must be below the stop point after the first probes")
    ap.add_argument("--write-stop-point", action="store_true",
                    help="write the chosen stop point into the full store's calibration.json (see the module doc)")
    args = ap.parse_args()
    stores = {"small": ReferenceStore.load(store_dir(args.small)), "full": ReferenceStore.load(store_dir(args.full))}
    n = {k: int(s.config.get("n_probes") or 0) for k, s in stores.items()}
    print(f"# {args.small} ({n['small']} probes) inside {args.full} ({n['full']} probes); "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores", flush=True)
    results = {}
    earlier = json.loads(Path(args.rows).read_text()) if args.rows else {}
    for refit in args.refit:
        t0 = time.time()
        reused = refit in earlier
        rows = earlier[refit]["rows"] if reused else judged(stores, refit, limit=args.limit)
        if args.json:
            results[refit] = {"rows": rows}
            Path(args.json).write_text(json.dumps({**earlier, **results}, indent=1))
        took = f"judged in an earlier run, {args.rows}" if reused else f"{time.time() - t0:.0f} s"
        print(f"\nrefit without the {refit} ({len(rows)} cards, {took})\n")
        print(f"| stop after the first probes when the {args.statistic.replace('_', ' ')} there is below | share stopped | probes asked "
              "(mean) | stopped cards whose flags differ from the full verdict (undeclared-base lost / added) | false undeclared-base on honest "
              "(high / medium) | omit -> undeclared-base | wrong -> unsupported-base |")
        print("|---|---|---|---|---|---|---|")
        res = {PEER: summary(adaptive(rows, None, args.statistic))}
        print(line("peer: always all probes", res[PEER], n["small"], n["full"]), flush=True)
        for b in GRID:
            res[str(b)] = summary(adaptive(rows, b, args.statistic))
            print(line(f"{b}", res[str(b)], n["small"], n["full"]), flush=True)
        results[refit] = {"rows": rows, "summaries": res}
    by_protocol = {f"refit without the {refit}": results[refit]["summaries"] for refit in args.refit}
    b = choose_stop_point(by_protocol)
    print(f"\n# stop point by the rule: {b}")
    if args.write_stop_point:
        if args.limit is not None:
            sys.exit("error: --write-stop-point measures every labelled model; drop --limit")
        if b is None:
            print("# nothing written: even the lowest grid point loses an undeclared-base")
        else:
            command = (f"python bench/adaptive_eval.py --small {args.small} --full {args.full} "
                       f"--refit {' '.join(args.refit)} --write-stop-point")
            point = write_stop_point(store_dir(args.full), stores["small"], b, by_protocol, command)
            print(f"# written to {store_dir(args.full) / CALIBRATION_NAME}: {json.dumps(point['measured'])}")
    if args.json:
        Path(args.json).write_text(json.dumps({**earlier, **results}, indent=1))


if __name__ == "__main__":
    main()
