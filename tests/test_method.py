"""Evidence vectors (hf_dna.features) and the committed paper600:100 store on known relatives."""
from __future__ import annotations

import numpy as np
import pytest

from hf_dna.features import LEX_DIM, WIDE_DIM, lexical_sketch, ngram_hashes, record_evidence

TEXTS = ["The capital of France is Paris.", "Answer: B. Because water boils at 100 C.", "", "日本語の文です。"]


def test_record_evidence_is_deterministic_and_compact():
    emb = np.random.default_rng(0).normal(size=(len(TEXTS), 384)).astype(np.float32)
    first = record_evidence(TEXTS, emb, seed=42)
    assert first == record_evidence(list(TEXTS), emb.copy(), seed=42)
    assert set(first) == {"lex", f"emb{WIDE_DIM}"} and len(first["lex"]) == LEX_DIM
    assert first != record_evidence(TEXTS, emb, seed=7)
    assert len(str(first)) < 20_000


def test_ngram_hashes_are_fixed_across_runs():
    # pinned values: a change here changes every stored lexical sketch
    assert ngram_hashes("abc", (3,)).tolist() == ngram_hashes("ABC", (3,)).tolist()
    assert len(ngram_hashes("abcdef")) == 4 + 3 + 2
    assert ngram_hashes("ab").size == 0


def test_lexical_sketch_estimates_average_per_probe_cosine():
    rng = np.random.default_rng(1)
    words = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu".split()
    a = [" ".join(rng.choice(words, 30)) for _ in range(40)]
    b = [t if i % 2 else " ".join(rng.choice(words, 30)) for i, t in enumerate(a)]
    c = ["Zzz qqq " + "".join(rng.choice(list("xyzw"), 40)) for _ in range(40)]
    sa, sb, sc = (lexical_sketch(t, 42) for t in (a, b, c))
    assert np.dot(sa, sa) == pytest.approx(1.0, abs=0.1)
    assert np.dot(sa, sb) > np.dot(sa, sc) + 0.2


def test_committed_store_known_relatives_are_closer(paper100_store):
    """Qwen2.5-7B -> its instruct fine-tune scores above nearly all unrelated (llama-2, pythia) models.

    With the store's relation model, as the audit decides. (Plain centred 128-d DNA cosine does not manage
    this: base models sit closer to other base models than to their own chat fine-tunes; bench/RESULTS.md.)"""
    from hf_dna.calibrate import RelationModel

    model = RelationModel.from_dict(paper100_store.calibration)
    query = next(r for r in paper100_store.records if r.model_id == "Qwen/Qwen2.5-7B")
    others = [r for r in paper100_store.records if r is not query]
    prob = model.probability(query, others)
    ids = [r.model_id for r in others]
    relative = prob[ids.index("Qwen/Qwen2.5-7B-Instruct")]
    unrelated = [p for p, r in zip(prob, others) if (paper100_store.lineage(r.model_id) or {}).get("family") in ("llama-2", "pythia")]
    assert len(unrelated) >= 20
    assert np.mean(np.asarray(unrelated) < relative) > 0.9
