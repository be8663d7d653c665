"""Add the ``phrases`` evidence (hf_dna.evidence.sketches.phrase_hashes) to the embedded reference stores' records
from the same responses they were built from, and refit each store's calibration on it.

One-off for stores built before the evidence existed: a rebuild (`hf-dna reference build`, the command in each
store's README) gives the same records but re-encodes every response (~25 min per 100 probes on one core).
Each record's texts are checked against its stored lexical sketch before anything is written. The measured
operating point and adaptive stop point go with the old calibration; `python bench/audit_eval.py
--write-operating-point` and `python bench/adaptive_eval.py --write-stop-point` measure them again.

Usage: python scripts/add_phrase_evidence.py [STORE ...]   (default: the three embedded stores)
"""
from __future__ import annotations

import re
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hf_dna.evidence.relation import RelationModel  # noqa: E402
from hf_dna.evidence.sketches import _compact, lexical_sketch, pack_phrases, phrase_hashes  # noqa: E402
from hf_dna.pipeline.probes import load_probe_set  # noqa: E402
from hf_dna.reference.build import cv_table_rows, read_model_responses  # noqa: E402
from hf_dna.reference.store import ReferenceStore  # noqa: E402

SHARED = ROOT.parent / "shared" / "data" / "reference-responses"
SOURCES = {  # store -> (probe spec, responses files)
    "paper600-100": ("paper600:100", [SHARED / "paper600.parquet",
                                      ROOT / "scripts/data/smollm2-135m-instruct.paper600-100.jsonl"]),
    "paper600-50": ("paper600:50", [SHARED / "paper600.parquet",
                                    ROOT / "scripts/data/smollm2-135m-instruct.paper600-100.jsonl"]),
    "chat-rand-zh100": ("chat-rand-zh100", [SHARED / "chat-rand-zh100.parquet"]),
}


def main(names: list[str]) -> None:
    for name in names or list(SOURCES):
        spec, files = SOURCES[name]
        directory = ROOT / "hf_dna" / "data" / "reference" / name
        store = ReferenceStore.load(directory)
        probes = load_probe_set(spec)
        responses = read_model_responses([str(f) for f in files if f.exists()], probes)
        records = []
        for record in store.records:
            texts = responses[record.model_id]
            stored = np.asarray(record.evidence["lex"])
            if np.abs(np.asarray(_compact(lexical_sketch(texts, record.projection_seed))) - stored).max() > 0.11:
                sys.exit(f"error: {name}: the responses of {record.model_id} are not the ones its record was built from")
            records.append(replace(record, evidence={**record.evidence, "phrases": pack_phrases(phrase_hashes(texts))}))
        store = ReferenceStore(records, config=store.config, lineage=store.lineage_table,
                               calibration=None, readme=store.readme)
        model = RelationModel.fit(store.records, store.lineage_table)
        store.calibration = model.to_dict()
        store.readme = re.sub(r"(\|---\|---\|---\|---\|---\|---\|---\|\n)(\|.*\|\n)+", lambda m: m.group(1) + "\n".join(cv_table_rows(model)) + "\n",
                              store.readme, count=1)
        if "scripts/add_phrase_evidence.py" not in store.readme:
            store.readme += ("\n## Phrases evidence\n\nThe `phrases` evidence was added to every record from the same "
                             "responses, and the calibration refitted, by `python scripts/add_phrase_evidence.py`.\n")
        store.save(directory)
        print(f"{name}: {len(records)} records; " + "; ".join(f"{k}: AUC {v['auc']:.3f}, top-1 {v['top1']:.3f}"
                                                              for k, v in model.cv.items()), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
