"""Evidence vectors (hf_dna.evidence.sketches) and the committed paper600:100 store on known relatives."""
from __future__ import annotations

import numpy as np
import pytest

from hf_dna.evidence.relation import phrase_similarity, record_vectors, vote_matrix
from hf_dna.evidence.sketches import (LEX_DIM, PHRASE_MAX_TOKENS, PROBE_DIM, WIDE_DIM, lexical_probe_sketch, lexical_sketch,
                                     ngram_hashes, pack_phrases, pack_probe_sketch, phrase_hashes, probe_sketch,
                                     record_evidence, unpack_phrases, unpack_probe_sketch)

TEXTS = ["The capital of France is Paris.", "Answer: B. Because water boils at 100 C.", "", "日本語の文です。"]


def test_record_evidence_is_deterministic_and_compact():
    emb = np.random.default_rng(0).normal(size=(len(TEXTS), 384)).astype(np.float32)
    first = record_evidence(TEXTS, emb, seed=42)
    assert first == record_evidence(list(TEXTS), emb.copy(), seed=42)
    assert set(first) == {"lex", f"emb{WIDE_DIM}", f"probe{PROBE_DIM}", f"lexprobe{PROBE_DIM}", "phrases"}
    assert len(first["lex"]) == LEX_DIM
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


def test_phrase_hashes_are_keyed_by_probe_and_round_trip():
    text = "the quick brown fox jumps over the lazy dog and runs far away from the farm"
    one = phrase_hashes([text])
    assert one.dtype == np.uint32 and np.all(np.diff(one.astype(np.int64)) > 0)
    assert 0 < one.size < len(text.split())  # a fixed part of the hash space is kept
    assert np.array_equal(one, phrase_hashes([text.upper()]))  # lower-cased
    assert np.intersect1d(one, phrase_hashes(["", text])).size == 0  # the same words under another probe
    assert phrase_hashes(["too short", ""]).size == 0
    long = " ".join(f"w{i}" for i in range(3 * PHRASE_MAX_TOKENS))
    assert np.array_equal(phrase_hashes([long]), phrase_hashes([" ".join(long.split()[:PHRASE_MAX_TOKENS])]))
    cjk = phrase_hashes(["日本語の文です。今日は良い天気ですね。"])
    assert cjk.size > 0  # CJK characters count as words
    assert np.array_equal(unpack_phrases(pack_phrases(one)), one)
    assert unpack_phrases(pack_phrases(np.zeros(0, np.uint32))).size == 0
    assert unpack_phrases({"format": "phrase-hashes-v1", "count": 3, "gaps": "AAAA"}) is None
    assert unpack_phrases({"shape": [1, 2]}) is None and unpack_phrases([1]) is None
    assert "phrases" in record_vectors_of(record_evidence([text], np.ones((1, 384), np.float32), 42))


def record_vectors_of(evidence):
    from hf_dna.pipeline.record import DNARecord

    return record_vectors(DNARecord(model_id="m", dna=[1.0] * 128, probe_set="p", probe_hash="h", n_probes=1,
                                    encoder="e", projection_seed=42, projection="gaussian", evidence=evidence))


def test_phrase_similarity_weighs_rare_shared_phrases():
    """Model 1 repeats model 0's rare sentences; every model says the same common boilerplate."""
    rng = np.random.default_rng(5)
    words = [f"w{i}" for i in range(5000)]

    def sentence():
        return " ".join(rng.choice(words, 40))

    common = ["as an ai language model i cannot say " * 3 for _ in range(20)]
    texts = [[c + sentence() for c in common] for _ in range(30)]
    texts[1] = [c + t[len(c):][:150] + " " + sentence() for c, t in zip(common, texts[0])]
    sims = phrase_similarity([phrase_hashes(t) for t in texts])
    assert np.isnan(sims[0, 0]) and np.isclose(sims[0, 1], sims[1, 0])
    assert np.nanargmax(sims[0]) == 1 and sims[0, 1] > 0.2
    assert np.nanmax(sims[2:, 2:]) < 0.05  # the shared boilerplate is too common to count
