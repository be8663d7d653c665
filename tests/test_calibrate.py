"""RelationModel: fit on labelled reference pairs, serialise, score held-out families; DNA-only fallback."""
from __future__ import annotations

import json

import numpy as np
import pytest

from hf_dna.evidence.lineage import labelled_family
from hf_dna.evidence.metrics import auc
from hf_dna.evidence.relation import RelationModel, family_folds
from hf_dna.errors import ReferenceStoreError
from hf_dna.pipeline.record import DNARecord


@pytest.fixture(scope="module")
def split(paper100_store):
    """Fit on half of the labelled families (folds 0-1 of 4), hold out the rest."""
    families = np.array([labelled_family(paper100_store.lineage(r.model_id)) for r in paper100_store.records], dtype=object)
    fold = family_folds(families, 4)
    train = [r for r, f in zip(paper100_store.records, fold) if f in (0, 1)]
    test = [(r, fam) for r, f, fam in zip(paper100_store.records, fold, families) if f in (2, 3)]
    return train, test


def test_fit_serialise_and_score_held_out_families(paper100_store, split):
    train, test = split
    model = RelationModel.fit(train, paper100_store.lineage_table, folds=3)
    clone = RelationModel.from_dict(json.loads(json.dumps(model.to_dict())))
    records = [r for r, _ in test]
    families = np.array([f for _, f in test], dtype=object)
    scores, labels = [], []
    for i, (query, fam) in enumerate(test[:40]):
        others = records[:i] + records[i + 1:]
        prob = clone.probability(query, others)
        assert np.allclose(prob, model.probability(query, others))
        assert ((prob >= 0) & (prob <= 1)).all()
        scores.append(prob)
        labels.append(np.delete(families, i) == fam)
    scores, labels = np.concatenate(scores), np.concatenate(labels)
    assert scores[labels].mean() > scores[~labels].mean()
    assert auc(scores, labels) > 0.6
    full = ",".join(clone.choose_head(records[0], records[1:])[0])
    assert full == "dna,lex,emb1024,probe64,lexprobe64,phrases"
    assert set(clone.cv) == {full, "dna,lex,emb1024,probe64,lexprobe64", "dna"}
    assert 0.5 < clone.cv[full]["auc_by_fold"] <= 1.0 and 0 <= clone.cv[full]["top1"] <= 1


def test_query_without_evidence_falls_back_to_dna(paper100_store, split):
    train, test = split
    model = RelationModel.fit(train, paper100_store.lineage_table, folds=3)
    query = DNARecord.from_dict({**test[0][0].to_dict(), "evidence": {}})
    scores = model.score(query, [r for r, _ in test[1:]])
    assert scores.fallback and scores.kinds == ("dna",) and "DNA-only" in scores.note
    assert set(model.explain(scores, 0)) == {"dna"}
    rich = model.score(test[0][0], [r for r, _ in test[1:]])
    assert not rich.fallback and "lex" in rich.kinds


def test_query_without_phrases_keeps_the_other_evidence(paper100_store, split):
    """A record made before the phrase sets existed is scored by the head without them, not by the DNA alone."""
    train, test = split
    model = RelationModel.fit(train, paper100_store.lineage_table, folds=3, measure=False)
    old = test[0][0]
    query = DNARecord.from_dict({**old.to_dict(), "evidence": {k: v for k, v in old.evidence.items() if k != "phrases"}})
    scores = model.score(query, [r for r, _ in test[1:]])
    assert scores.fallback and scores.kinds == ("dna", "lex", "emb1024", "probe64", "lexprobe64")
    assert "phrase" in scores.note and "DNA-only" not in scores.note
    assert "phrases" in model.score(old, [r for r, _ in test[1:]]).kinds


def test_fit_needs_labelled_families(paper100_store):
    with pytest.raises(ReferenceStoreError, match="3 labelled families"):
        RelationModel.fit(paper100_store.records[:5], {})
    with pytest.raises(ReferenceStoreError):
        RelationModel.from_dict({"format": "other"})


def test_all_pairs_matches_one_query_at_a_time(paper100_store, split):
    train, _ = split
    model = RelationModel.fit(train, paper100_store.lineage_table, folds=3)
    records = train[:30]
    matrix = model.all_pairs(records)
    assert np.isnan(np.diag(matrix)).all()
    row = model.probability(records[3], records[:3] + records[4:])
    assert np.allclose(np.delete(matrix[3], 3), row, atol=0.05)
