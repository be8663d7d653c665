"""Audit logic on a small synthetic reference whose lineage and geometry are known.

Families alpha..delta: a base, a chat fine-tune (moderate distance) and, for alpha and beta, a quantized copy
(tiny distance). The relation model is fitted on these records exactly as a real reference's is.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from hf_dna.audit import Declared, audit, judge
from hf_dna.audit.judge import relation_distances
from hf_dna.evidence.relation import RelationModel
from hf_dna.errors import IncompatibleRecordsError, InvalidInputError
from hf_dna.pipeline.record import DNARecord, write_records
from hf_dna.reference.store import ReferenceStore

DIM = 16
FAMILIES = ("alpha", "beta", "gamma", "delta", "eps")


def make_record(model_id: str, vector: np.ndarray, probe_hash: str = "h" * 64, **kw) -> DNARecord:
    return DNARecord(model_id=model_id, dna=vector.tolist(), probe_set="synthetic", probe_hash=probe_hash,
                     n_probes=8, encoder="enc", projection_seed=42, projection="p", **kw)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """(store dir, base vectors by family) of a synthetic reference with calibration fitted on it."""
    rng = np.random.default_rng(0)
    bases = {fam: rng.normal(size=DIM) for fam in FAMILIES}
    records, lineage = [], {}
    for fam, base in bases.items():
        members = {f"org/{fam}-base": (base, "", "base"),
                   f"org/{fam}-chat": (base + rng.normal(scale=0.35, size=DIM), f"org/{fam}-base", "finetune"),
                   f"org/{fam}-chat2": (base + rng.normal(scale=0.35, size=DIM), f"org/{fam}-base", "finetune")}
        if fam in ("alpha", "beta", "gamma"):
            members[f"org/{fam}-q4"] = (base + rng.normal(scale=0.02, size=DIM), f"org/{fam}-base", "quantized")
        for mid, (vec, parent, rel) in members.items():
            records.append(make_record(mid, vec))
            lineage[mid] = {"model_id": mid, "family": fam, "parent": parent, "relation": rel,
                            "confidence": "high", "note": ""}
    calibration = RelationModel.fit(records, lineage).to_dict()
    directory = tmp_path_factory.mktemp("ref")
    ReferenceStore.create(directory, records, lineage=lineage, calibration=calibration)
    return directory, bases


@pytest.fixture()
def store(world):
    return ReferenceStore.load(world[0])


def query(world, fam: str, scale: float = 0.35, model_id: str = "someone/new-model") -> DNARecord:
    rng = np.random.default_rng(FAMILIES.index(fam) + int(scale * 1000))
    return make_record(model_id, world[1][fam] + rng.normal(scale=scale, size=DIM))


def codes(verdict) -> list[str]:
    return [f.code for f in verdict.flags]


def test_planted_undeclared_base_is_flagged(world, store):
    verdict = judge("someone/new-model", query(world, "alpha"), Declared(), store)
    assert codes(verdict) == ["undeclared-base"]
    flag = verdict.flags[0]
    assert flag.evidence["relatives"][0]["family"] == "alpha"
    assert "org/alpha-base" in flag.evidence["suggested_base_models"] + [r["model_id"] for r in flag.evidence["relatives"]]
    assert verdict.nearest[0].family == "alpha" and verdict.nearest[0].probability >= 0.5
    assert flag.evidence["relatives"][0]["decided_by"]  # which evidence moved the probability


def test_static_evidence_is_reported_beside_the_verdict(world, store):
    """Records extracted from model files carry architecture and tokenizer-vocab evidence; the audit names the
    reference models that share the vocabulary and marks it in each relative's evidence."""
    shared = {"architectures": ["LlamaForCausalLM"], "tokenizer_vocab_hash": "a" * 64}
    for r in store.records:  # this test's own copy of the store
        if r.model_id == "org/alpha-base":
            r.evidence["static"] = dict(shared)
        elif r.model_id == "org/alpha-chat":
            r.evidence["static"] = {**shared, "tokenizer_vocab_hash": "b" * 64}
    q = query(world, "alpha")
    q.evidence["static"] = dict(shared)
    verdict = judge("someone/new-model", q, Declared(), store)
    assert any(n == "static evidence: same tokenizer vocabulary as org/alpha-base" for n in verdict.notes)
    relatives = {r["model_id"]: r for r in verdict.flags[0].evidence["relatives"]}
    assert relatives["org/alpha-base"]["static"] == {"same_tokenizer_vocab": True, "same_architecture": True}
    assert relatives["org/alpha-chat"]["static"]["same_tokenizer_vocab"] is False
    assert all("static" not in r for m, r in relatives.items() if m not in ("org/alpha-base", "org/alpha-chat"))


def test_honest_card_is_clean(world, store):
    verdict = judge("someone/new-model", query(world, "beta"), Declared(["org/beta-base"], "finetune", "card", True), store)
    assert verdict.flags == [] and verdict.verdict == "clean"


def test_wrong_declared_base_is_unsupported(world, store):
    verdict = judge("someone/new-model", query(world, "gamma"), Declared(["org/delta-base"], None, "card"), store)
    assert "unsupported-base" in codes(verdict)
    flag = next(f for f in verdict.flags if f.code == "unsupported-base")
    assert flag.evidence["declared_base"]["model_id"] == "org/delta-base"
    assert flag.evidence["declared_base"]["probability"] < 0.5
    assert "undeclared-base" in codes(verdict)  # and the real (gamma) relative is named


def test_declared_base_missing_from_reference_is_a_note(world, store):
    verdict = judge("someone/new-model", query(world, "beta"), Declared(["org/beta-base", "elsewhere/x"], None, "card"),
                    store)
    assert "unsupported-base" not in codes(verdict)
    assert any("elsewhere/x" in note and "not in the reference" in note for note in verdict.notes)


def test_descendants_and_self_are_not_flagged(store):
    base = next(r for r in store.records if r.model_id == "org/alpha-base")
    verdict = judge("org/alpha-base", base, Declared(), store)
    assert "org/alpha-base" not in [n.model_id for n in verdict.nearest]
    assert verdict.nearest[0].family == "alpha"  # its own descendants are its nearest ...
    assert verdict.flags == []  # ... but they name it as parent: not an undeclared base


def test_no_base_declared_with_derived_relation(world, store):
    verdict = judge("x/y", query(world, "eps"), Declared([], "finetune", "card", True), store)
    assert "no-base-declared" in codes(verdict)


def test_wrong_relation_from_reference_pairs(world, store):
    groups = relation_distances(store)
    assert len(groups["quantized"]) == 3 and len(groups["trained"]) == 10
    far = query(world, "alpha", scale=0.35)
    verdict = judge("x/q", far, Declared(["org/alpha-base"], "quantized", "card", True), store)
    assert codes(verdict) == ["wrong-relation"]
    assert verdict.flags[0].evidence["p_quantized"] < 0.5
    near = query(world, "alpha", scale=0.02)
    assert judge("x/q", near, Declared(["org/alpha-base"], "quantized", "card", True), store).flags == []
    inferred = judge("x/q", far, Declared(["org/alpha-base"], "quantized", "card", False), store)
    assert inferred.flags == []  # an inferred relation is not the card's claim


def test_verdict_json_keys(world, store):
    data = judge("someone/new-model", query(world, "alpha"), Declared(), store, k=3).to_dict()
    assert list(data) == ["model", "declared", "nearest", "flags", "record", "verdict", "notes", "evidence",
                          "family_confidence", "relative_posterior"]
    assert 0.0 <= data["family_confidence"] <= 1.0 and f"P {data['family_confidence']:.2f}" in data["evidence"]["behaviour"]
    assert data["relative_posterior"] == 0.95  # this store carries no operating point of its own
    assert set(data["evidence"]) >= {"weights", "behaviour"}  # what each kind of evidence said
    assert set(data["declared"]) == {"base_models", "relation", "source"}
    assert len(data["nearest"]) == 3 and set(data["nearest"][0]) == {"model_id", "distance", "probability", "family",
                                                                  "weights", "weight_similarity"}
    assert data["nearest"][0]["weights"] is None  # synthetic records carry no weight sketch
    assert set(data["flags"][0]) == {"code", "message", "evidence"}
    assert data["record"]["model_id"] == "someone/new-model"
    json.dumps(data)  # serialisable as it is


def test_audit_offline_with_cli_base_and_record_reuse(world, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    path = write_records([query(world, "alpha")], tmp_path / "m.dna.json")
    verdict = audit("api/model", reference=str(world[0]), record=str(path))
    assert verdict.declared.source == "none" and codes(verdict) == ["undeclared-base"]
    assert any("HF_HUB_OFFLINE" in note for note in verdict.notes)
    declared = audit("api/model", reference=str(world[0]), record=str(path), base_models=["org/alpha-base"])
    assert declared.declared.source == "cli" and declared.flags == []


def test_audit_runs_when_the_hub_is_unreachable(world, tmp_path, monkeypatch):
    """No network (a closed local port): the card cannot be read, the audit still runs and says why."""
    import socket

    from huggingface_hub import constants

    with socket.socket() as sock:  # a free port nothing listens on
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    monkeypatch.setattr(constants, "ENDPOINT", url)
    monkeypatch.setenv("HF_ENDPOINT", url)
    path = write_records([query(world, "alpha")], tmp_path / "m.dna.json")
    verdict = audit("org/unreachable-model", reference=str(world[0]), record=str(path))
    assert verdict.declared.source == "none" and codes(verdict) == ["undeclared-base"]
    assert any("unreachable" in note and "no base declared" in note for note in verdict.notes)


def test_audit_refuses_incompatible_record(world, tmp_path):
    path = write_records([make_record("m", np.ones(DIM), probe_hash="x" * 64)], tmp_path / "m.dna.json")
    with pytest.raises(IncompatibleRecordsError):
        audit("m", reference=str(world[0]), record=str(path), base_models=["org/alpha-base"])
    with pytest.raises(InvalidInputError):
        audit("m", reference=str(world[0]), record=str(path), relation="cousin")


def test_decision_points_are_fitted_not_set(store):
    from hf_dna.audit.decision import _crossing, decision_points

    rng = np.random.default_rng(1)
    x = rng.normal(size=4000)
    y = (rng.random(4000) < 1 / (1 + np.exp(-3 * (x - 0.5)))).astype(float)  # true crossing at logit 0.5
    assert abs(_crossing(x, y, balanced=False) - 1 / (1 + np.exp(-0.5))) < 0.03
    assert _crossing(x, np.ones_like(x), balanced=False) is None  # one class: no fit
    relation_model = RelationModel.from_dict(store.calibration)
    scores = relation_model.all_pairs(store.records)
    direct = relation_model.probability(store.records[0], store.records[1:])
    assert np.isnan(scores[0, 0]) and np.allclose(scores[0, 1:], direct, atol=0.05)
    points = decision_points(store, relation_model)
    assert 0 < points.support < 1 and "fitted" in points.source
    # every top candidate of this small world is right: one class, no family fit, and the source says so
    assert points.family_fit is None and points.n_top == 18 and "a fit failed" in points.source


def test_family_confidence_fitted_on_the_embedded_reference_tells_right_tops_from_wrong():
    from sklearn.metrics import roc_auc_score

    from hf_dna.audit.candidates import ReferenceLineage
    from hf_dna.audit.decision import decision_points
    from hf_dna.pipeline.probes import load_probe_set
    from hf_dna.reference import ReferenceStore

    store = ReferenceStore.default(probe_hash=load_probe_set("paper600:50").hash)
    model = RelationModel.from_dict(store.calibration)
    points = decision_points(store, model)
    assert points.family_fit is not None and points.n_top > 150
    coef = points.family_fit[0]
    # surer with a wider margin over other families and more agreement of its family (the top's own logit is
    # collinear with its margin: its coefficient is ~0 on this store, +-0.03 as single records change)
    assert coef[1] > 0.3 and coef[2] > 0.3
    lineage = ReferenceLineage(store)
    families = [lineage.labelled_family(r.model_id) for r in store.records]
    scores = model.all_pairs(store.records)
    sure, right = [], []
    for i, family in enumerate(families):
        if family:
            top = points.top_candidate(scores[i], families)
            sure.append(top.confidence)
            right.append(families[top.index] == family)
    assert 0.2 < np.mean(right) < 0.9 and roc_auc_score(right, sure) > 0.75


def test_family_confidence_reads_the_top_its_margin_and_its_familys_agreement():
    from hf_dna.audit.decision import AGREEMENT_TOP, DecisionPoints, TopCandidate, top_candidate_features

    p = np.array([0.9, np.nan, 0.6, 0.8, 0.1, 0.05, 0.02])
    families = ["a", "a", "b", "a", "", "", "c"]
    order, features = top_candidate_features(p, families)
    logit = lambda v: np.log(v / (1 - v))  # noqa: E731
    assert order == [0, 3, 2, 4, 5, 6]  # best first; the NaN candidate (no calibration applies) is left out
    assert np.allclose(features, [logit(0.9), logit(0.9) - logit(0.6), 2 / AGREEMENT_TOP])  # a, a, b, '', ''
    assert top_candidate_features(np.array([0.5, np.nan]), ["a", "a"]) is None
    # unlabelled candidates are families of their own: the runner-up '' counts as another family
    assert np.isclose(top_candidate_features(np.array([0.9, 0.7]), ["", ""])[1][1], logit(0.9) - logit(0.7))
    points = DecisionPoints(0.5, "test", (np.array([1.0, 1.0, 1.0]), 0.0, np.zeros(3), np.ones(3)))
    top = points.top_candidate(p, families)
    assert top.index == 0 and top.agreeing == [0, 3]  # its family among the best 5
    assert points.top_candidate(np.where(np.arange(7) == 2, 0.3, p), families).confidence > top.confidence  # margin
    more = points.top_candidate(p, ["a", "a", "b", "a", "a", "", "c"])
    assert more.confidence > top.confidence and more.agreeing == [0, 3, 4]  # more agreement
    assert DecisionPoints(0.5, "no fit").top_candidate(p, families) == TopCandidate(0, 0.9, [0, 3])  # the top's P
    assert points.top_candidate(np.array([0.9, 0.8]), ["", ""]).agreeing == [0]  # unlabelled: a family of its own


def test_unplaceable_declared_base_turns_relative_into_a_note(world, store):
    verdict = judge("someone/new-model", query(world, "alpha"), Declared(["elsewhere/x"], None, "card"), store)
    assert verdict.flags == []
    assert any("cannot be placed" in note and "org/alpha-" in note for note in verdict.notes)


def test_evidence_of_another_size_is_dropped_with_a_note(world, store):
    from hf_dna.audit.candidates import _comparable_evidence

    ref = make_record("r", np.ones(DIM), evidence={"lex": [0.1] * 8, "emb": [0.2] * 4})
    query_record = make_record("q", np.ones(DIM), evidence={"lex": [0.1] * 7, "emb": [0.3] * 4})
    kept, notes = _comparable_evidence(query_record, ref)
    assert set(kept.evidence) == {"emb"} and "lex" in notes[0] and "differs in size" in notes[0]
    assert _comparable_evidence(ref, ref) == (ref, [])


def test_the_references_operating_point_is_the_default_relative_decision_point(world):
    def store_with(point):
        store = ReferenceStore.load(world[0])  # a new object: decision points are fitted once per store object
        if point is not None:
            store.calibration = {**store.calibration,
                                 "operating_point": {"relative_posterior": point, "rule": "a test's rule"}}
        return store

    record = query(world, "alpha")
    default = judge("someone/new-model", record, Declared(), store_with(None)).flags[0]
    sure = default.evidence["family_confidence"]
    assert default.code == "undeclared-base" and default.evidence["relative_posterior"] == 0.95
    assert default.evidence["relative_posterior_source"] == "the default" and sure >= 0.95
    stricter = (sure + 1) / 2  # above this model's confidence: the store's point keeps behaviour from flagging
    verdict = judge("someone/new-model", record, Declared(), store_with(stricter))
    assert "undeclared-base" not in codes(verdict) and f"{stricter:.2f}" in verdict.evidence["behaviour"]
    override = judge("someone/new-model", record, Declared(), store_with(stricter), relative_posterior=0.5).flags[0]
    assert override.code == "undeclared-base" and override.evidence["relative_posterior_source"] == "set by the caller"
    looser = judge("someone/new-model", record, Declared(), store_with(0.6)).flags[0]
    assert looser.evidence["relative_posterior"] == 0.6 and "a test's rule" in looser.evidence["relative_posterior_source"]
    for bad in (0, 1.5, "0.6"):  # not a probability: the default, not a crash
        assert judge("someone/new-model", record, Declared(), store_with(bad)).flags[0].evidence["relative_posterior"] == 0.95


def test_embedded_stores_carry_the_operating_point_measured_on_them():
    from click.testing import CliRunner

    from hf_dna.audit.decision import operating_point
    from hf_dna.cli import main
    from hf_dna.reference import default_store_dirs

    points = {d.name: operating_point(ReferenceStore.load(d)) for d in default_store_dirs()}
    assert points["chat-rand-zh100"][0] < 0.95 <= points["paper600-100"][0]  # API models: flagged sooner
    for directory in default_store_dirs():
        measured = json.loads((directory / "calibration.json").read_text())["operating_point"]["measured"]
        if points[directory.name][0] < 0.95:  # chosen below the default only where no honest card was flagged
            assert all(m["false_undeclared_high"] == 0 and m["n_honest_high"] >= 40 for m in measured.values())
    chat = next(d for d in default_store_dirs() if d.name == "chat-rand-zh100")
    info = CliRunner().invoke(main, ["reference", "info", str(chat), "--json"])
    assert json.loads(info.output)["relative_posterior"] == points["chat-rand-zh100"][0]


def test_refitting_a_store_drops_its_operating_point_and_stop_point_and_says_so(world, tmp_path):
    import shutil

    from hf_dna.reference.build import add_records

    directory = tmp_path / "store"
    shutil.copytree(world[0], directory)
    calibration = json.loads((directory / "calibration.json").read_text())
    calibration["operating_point"] = {"relative_posterior": 0.6, "rule": "measured on the old calibration"}
    calibration["early_stop"] = {"n_probes": 2, "family_confidence_below": 0.5}
    (directory / "calibration.json").write_text(json.dumps(calibration))
    kept, notes = add_records(directory, [query(world, "beta", model_id="someone/kept")])
    assert kept.calibration["operating_point"]["relative_posterior"] == 0.6 and not any("dropped" in n for n in notes)
    assert kept.calibration["early_stop"]["family_confidence_below"] == 0.5
    refitted, notes = add_records(directory, [query(world, "gamma", model_id="someone/refit")], refit=True)
    assert "operating_point" not in refitted.calibration and any("operating point was dropped" in n for n in notes)
    assert "early_stop" not in refitted.calibration and any("stop point was dropped" in n for n in notes)
    stored = json.loads((directory / "calibration.json").read_text())
    assert "operating_point" not in stored and "early_stop" not in stored


def test_the_audited_model_under_an_api_routing_variant_is_itself_not_a_relative(world, store):
    from hf_dna.evidence.lineage import same_model

    assert same_model("stepfun/step-3.5-flash", "stepfun/step-3.5-flash:free")
    assert same_model("a/b:beta", "A/B:thinking") and not same_model("a/b", "a/bc") and not same_model("a/b", "a/c:free")
    record = query(world, "alpha", model_id="vendor/new-chat")
    twin = make_record("vendor/new-chat:free", np.asarray(record.dna))
    with_twin = ReferenceStore(store.records + [twin], config=store.config, lineage=store.lineage_table,
                               calibration=store.calibration)
    verdict = judge("vendor/new-chat", record, Declared(), with_twin)
    assert all(not n.model_id.startswith("vendor/new-chat") for n in verdict.nearest)
    assert codes(verdict) == ["undeclared-base"] and verdict.nearest[0].family == "alpha"  # its real relatives remain
    other = judge("vendor/other-chat", record, Declared(), with_twin)  # another model: the copy is its nearest
    assert other.nearest[0].model_id == "vendor/new-chat:free"


def test_a_declared_distillation_is_not_flagged_by_behaviour_towards_another_family(world, store):
    near_alpha = query(world, "alpha")
    as_finetune = judge("someone/new-model", near_alpha, Declared(["org/beta-base"], "finetune", "card"), store)
    assert "undeclared-base" in codes(as_finetune)  # answers like alpha, names beta: flagged
    as_distill = judge("someone/new-model", near_alpha, Declared(["org/beta-base"], "distill", "card"), store)
    assert "undeclared-base" not in codes(as_distill)
    assert any("declares a distillation" in note and "org/alpha-" in note for note in as_distill.notes)
