"""Evidence vectors (hf_dna.evidence.sketches) and the committed paper600:100 store on known relatives."""
from __future__ import annotations

import numpy as np
import pytest

from hf_dna.evidence.relation import vote_matrix
from hf_dna.evidence.sketches import LEX_DIM, PROBE_DIM, WIDE_DIM, lexical_probe_sketch, lexical_sketch, ngram_hashes, pack_probe_sketch, probe_sketch, record_evidence, unpack_probe_sketch

TEXTS = ["The capital of France is Paris.", "Answer: B. Because water boils at 100 C.", "", "日本語の文です。"]


def test_record_evidence_is_deterministic_and_compact():
    emb = np.random.default_rng(0).normal(size=(len(TEXTS), 384)).astype(np.float32)
    first = record_evidence(TEXTS, emb, seed=42)
    assert first == record_evidence(list(TEXTS), emb.copy(), seed=42)
    assert set(first) == {"lex", f"emb{WIDE_DIM}", f"probe{PROBE_DIM}", f"lexprobe{PROBE_DIM}"} and len(first["lex"]) == LEX_DIM
    assert first[f"probe{PROBE_DIM}"]["shape"] == [len(TEXTS), PROBE_DIM]
    assert first != record_evidence(TEXTS, emb, seed=7)
    assert len(str(first)) < 20_000


def test_probe_sketch_round_trips_through_int8():
    emb = np.random.default_rng(2).normal(size=(30, 384)).astype(np.float32)
    sketch = probe_sketch(emb, seed=42)
    back = unpack_probe_sketch(pack_probe_sketch(sketch))
    assert back.shape == (30, PROBE_DIM)
    cos = np.sum(sketch * back, axis=1) / np.linalg.norm(sketch, axis=1) / np.linalg.norm(back, axis=1)
    assert cos.min() > 0.999
    assert unpack_probe_sketch({"shape": [30, PROBE_DIM], "scale": [1.0], "int8": "AAAA"}) is None
    assert unpack_probe_sketch({"shape": "x"}) is None and unpack_probe_sketch([1, 2]) is None


def test_lexical_probe_sketch_keeps_probes_apart():
    a = ["The cat sat on the mat.", "", "Paris is the capital of France."]
    b = ["The cat sat on a mat!", "Something", "Berlin is a city in Germany."]
    sa, sb = lexical_probe_sketch(a, 42), lexical_probe_sketch(b, 42)
    assert sa.shape == (3, PROBE_DIM) and not sa[1].any() and sb[1].any()

    def cos(x, y):
        return float(x @ y / np.linalg.norm(x) / np.linalg.norm(y))

    assert cos(sa[0], sb[0]) > 0.4 > cos(sa[0], lexical_probe_sketch(["Zebras zigzag quickly."], 42)[0])
    assert np.array_equal(lexical_probe_sketch(a, 42), sa) and not np.array_equal(lexical_probe_sketch(a, 7), sa)


def test_vote_finds_the_model_that_agrees_probe_by_probe():
    """Per probe, model 1 is a noisy copy of model 0; the others are independent: they vote for each other."""
    rng = np.random.default_rng(3)
    models = rng.normal(size=(12, 40, PROBE_DIM))
    models[1] = models[0] + 0.8 * rng.normal(size=(40, PROBE_DIM))
    votes = vote_matrix(models)
    assert np.isnan(votes[0, 0]) and votes[0, 1] == votes[1, 0]
    assert np.nanargmax(votes[0]) == 1 and votes[0, 1] > 0.9
    assert np.nanmax(votes[2:, 2:]) < votes[0, 1]


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
    """Qwen2.5-7B -> its instruct fine-tune scores above most unrelated (llama-2, pythia) models (86% with the
    probe64 vote evidence; 94% before it, while the store's held-out top-1 rose from 0.53 to 0.56).

    With the store's relation model, as the audit decides. (Plain centred 128-d DNA cosine does not manage
    this: base models sit closer to other base models than to their own chat fine-tunes; bench/RESULTS.md.)"""
    from hf_dna.evidence.relation import RelationModel

    model = RelationModel.from_dict(paper100_store.calibration)
    query = next(r for r in paper100_store.records if r.model_id == "Qwen/Qwen2.5-7B")
    others = [r for r in paper100_store.records if r is not query]
    prob = model.probability(query, others)
    ids = [r.model_id for r in others]
    relative = prob[ids.index("Qwen/Qwen2.5-7B-Instruct")]
    unrelated = [p for p, r in zip(prob, others) if (paper100_store.lineage(r.model_id) or {}).get("family") in ("llama-2", "pythia")]
    assert len(unrelated) >= 20
    assert np.mean(np.asarray(unrelated) < relative) > 0.8
