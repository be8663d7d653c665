"""Evidence vectors (hf_dna.features) and the committed paper600:100 store on known relatives."""
from __future__ import annotations

import numpy as np
import pytest

from hf_dna.features import LEX_DIM, WIDE_DIM, lexical_sketch, ngram_hashes, record_evidence
from hf_dna.reference import DEFAULT_ROOT, ReferenceStore

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


@pytest.fixture(scope="module")
def paper100() -> ReferenceStore:
    path = DEFAULT_ROOT / "paper600-100"
    if not path.is_dir():
        pytest.skip("embedded paper600-100 store is not built")
    return ReferenceStore.load(path)


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def test_committed_store_known_relatives_are_closer(paper100):
    by_id = {r.model_id: r for r in paper100.records}
    mean = paper100.matrix.mean(axis=0)
    v = {m: by_id[m].vector - mean for m in ("Qwen/Qwen2.5-7B", "Qwen/Qwen2.5-7B-Instruct", "Qwen/Qwen2.5-7B-Instruct")}
    base, instruct = v["Qwen/Qwen2.5-7B"], v["Qwen/Qwen2.5-7B-Instruct"]
    unrelated = [r for r in paper100.records if (paper100.lineage(r.model_id) or {}).get("family") in ("llama-2", "pythia")]
    assert len(unrelated) >= 5
    closer = [_cos(base, instruct) > _cos(base, r.vector - mean) for r in unrelated]
    assert np.mean(closer) > 0.8
