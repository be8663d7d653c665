"""ReferenceStore: local layout, nearest neighbours, and push/pull through the local Hub server."""
from __future__ import annotations

import json
import subprocess
import sys
import threading

import numpy as np
import pytest
from click.testing import CliRunner

from hf_dna import hub
from hf_dna.reference import store as reference
from hf_dna.cli import main
from hf_dna.errors import IncompatibleRecordsError, PushConflictError, ReferenceStoreError
from hf_dna.pipeline.record import DNARecord, write_records
from hf_dna.reference import ReferenceStore, pull, push
from hf_dna.reference.layout import record_path

DIM = 8


def make_record(model_id: str, seed: int = 0, revision: str = "local", **overrides) -> DNARecord:
    vector = np.random.default_rng(seed).normal(size=overrides.pop("dim", DIM)).astype(np.float32)
    fields = dict(probe_set="test-probes", probe_hash="h" * 64, n_probes=3, encoder="test-encoder",
                  projection_seed=42, projection="jl", created_at="2026-01-01T00:00:00+00:00", hf_dna_version="0.0")
    fields.update(overrides)
    return DNARecord(model_id=model_id, dna=vector, revision=revision, **fields)


@pytest.fixture()
def records() -> list[DNARecord]:
    return [make_record(f"org/m{i}", seed=i) for i in range(5)] + [make_record("solo", seed=9)]


def test_record_paths():
    assert record_path("org/name", "abc") == "data/org/name/abc.parquet"
    assert record_path("gpt2", "local") == "data/_/gpt2/local.parquet"
    assert record_path("org/n", "refs/pr/1") == "data/org/n/refs--pr--1.parquet"


def test_create_save_load_round_trip(tmp_path, records):
    lineage = tmp_path / "lineage.csv"
    lineage.write_text("set,dir_name,model_id,family,parent,relation,confidence,note\n"
                       "x,d,org/m1,fam,org/m0,finetune,high,\n")
    store = ReferenceStore.create(tmp_path / "store", records, lineage=lineage, calibration={"kind": "opaque", "a": 1})
    assert (tmp_path / "store" / "data" / "org" / "m0" / "local.parquet").is_file()
    assert (tmp_path / "store" / "data" / "_" / "solo" / "local.parquet").is_file()
    loaded = ReferenceStore.load(tmp_path / "store")
    assert sorted(loaded.model_ids) == sorted(store.model_ids)
    assert loaded.config == json.loads((tmp_path / "store" / "hf-dna.json").read_text())
    assert loaded.config["probe_hash"] == "h" * 64 and loaded.config["dim"] == DIM
    assert loaded.lineage("org/m1") == {"family": "fam", "parent": "org/m0", "relation": "finetune",
                                        "confidence": "high", "note": ""}
    assert loaded.lineage("org/m2") is None and loaded.calibration == {"kind": "opaque", "a": 1}
    assert loaded.matrix.dtype == np.float32 and loaded.matrix.shape == (6, DIM)
    by_id = {r.model_id: r for r in loaded.records}
    assert by_id["org/m3"].to_dict() == records[3].to_dict()


def test_add_refuses_incompatible_records(records):
    store = ReferenceStore(records)
    with pytest.raises(IncompatibleRecordsError, match="probe_hash differs"):
        store.add([make_record("org/other", probe_hash="z" * 64)])
    with pytest.raises(IncompatibleRecordsError, match="dim"):
        store.add([make_record("org/other", dim=DIM + 1)])
    assert len(store) == len(records)


def test_load_errors(tmp_path):
    with pytest.raises(ReferenceStoreError, match="hf-dna.json is missing"):
        ReferenceStore.load(tmp_path)
    with pytest.raises(ReferenceStoreError, match="neither"):
        ReferenceStore.load(str(tmp_path / "no such dir!"))


def test_nearest_cosine_euclidean_and_exclude(records):
    store = ReferenceStore(records)
    query = records[2].vector + 0.01
    hits = store.nearest(query, k=3)
    assert hits[0][0].model_id == "org/m2" and len(hits) == 3
    assert [d for _, d in hits] == sorted(d for _, d in hits)
    assert store.nearest(query, k=3, exclude={"org/m2"})[0][0].model_id != "org/m2"
    euclid = store.nearest(query, k=1, metric="euclidean")
    assert euclid[0][0].model_id == "org/m2"
    assert euclid[0][1] == pytest.approx(float(np.linalg.norm(records[2].vector - query)), rel=1e-4)


def test_nearest_on_100k_records_matches_brute_force():
    rng = np.random.default_rng(0)
    n, dim = 100_000, 128
    matrix = rng.normal(size=(n, dim)).astype(np.float32)
    store = ReferenceStore()
    store.config = reference.config_for(make_record("x", dim=dim))
    base = make_record("x", dim=dim)
    store._records = {(f"m{i}", "local"): DNARecord.__new__(DNARecord) for i in range(n)}
    for i, rec in enumerate(store._records.values()):  # cheap records: same provenance, row i of the matrix
        rec.__dict__.update(base.__dict__, model_id=f"m{i}", dna=matrix[i])
    query = rng.normal(size=dim).astype(np.float32)
    hits = store.nearest(query, k=10, exclude={"m0"})
    expected = 1 - (matrix.astype(np.float64) @ query) / (np.linalg.norm(matrix, axis=1) * np.linalg.norm(query))
    expected[0] = np.inf
    order = np.argsort(expected)[:10]
    assert [r.model_id for r, _ in hits] == [f"m{i}" for i in order]
    assert [d for _, d in hits] == pytest.approx(expected[order].tolist(), abs=1e-5)


def test_default_store_selection(tmp_path, monkeypatch, records):
    monkeypatch.setattr(reference, "DEFAULT_ROOT", tmp_path)
    with pytest.raises(ReferenceStoreError, match="no embedded reference"):
        ReferenceStore.default()
    ReferenceStore.create(tmp_path / "a", records)
    ReferenceStore.create(tmp_path / "b", [make_record("org/z", probe_hash="p" * 64, probe_set="paper600")])
    assert reference.default_store_dirs() == [tmp_path / "a", tmp_path / "b"]
    assert ReferenceStore.default().config["probe_set"] == "paper600"
    assert ReferenceStore.default(probe_hash="h" * 64).model_ids == ReferenceStore.load(tmp_path / "a").model_ids
    with pytest.raises(ReferenceStoreError, match="no embedded reference store was built with probe hash"):
        ReferenceStore.default(probe_hash="q" * 64)


# ---- Hub dataset ------------------------------------------------------------------------------------------------
def test_push_pull_and_load_dataset(local_hub, tmp_path, records):
    repo_id = local_hub.unique_id("reference")
    records[1].declared_base_models, records[1].declared_relation = ["org/m0"], "finetune"  # mixed optional fields
    records[1].encoder_revision = "abc123"
    store = ReferenceStore(records, lineage={"org/m1": {"family": "fam", "parent": "org/m0"}}, calibration={"c": 1},
                           readme="# A card without metadata\n")  # push adds the data_files config
    result = push(store, repo_id)
    assert result.committed and len(result.added) == len(records)
    pulled = pull(repo_id, tmp_path / "pulled")
    assert sorted(pulled.model_ids) == sorted(store.model_ids)
    assert pulled.config == store.config and pulled.calibration == {"c": 1}
    assert pulled.lineage("org/m1")["family"] == "fam"
    assert ReferenceStore.load(repo_id).model_ids == pulled.model_ids  # straight from the Hub id too

    import datasets

    table = datasets.load_dataset(repo_id, split="train", cache_dir=str(tmp_path / "datasets-cache"))
    assert sorted(table["model_id"]) == sorted(r.model_id for r in records)
    assert len(table[0]["dna"]) == DIM
    assert table[table["model_id"].index("org/m1")]["declared_relation"] == "finetune"


def test_push_is_idempotent(local_hub, records):
    repo_id = local_hub.unique_id("reference")
    first = push(records, repo_id)
    before = len(local_hub.server.requests)
    again = push(records, repo_id)
    downloads = [p for m, p in local_hub.server.requests[before:] if "/resolve/" in p and "/data/" in p]
    assert downloads == []  # unchanged records are recognised from the tree listing's blob ids
    assert not again.committed and again.sha == first.sha and len(again.unchanged) == len(records)
    assert hub.head_sha(repo_id, repo_type="dataset") == first.sha


def test_push_refuses_incompatible_records(local_hub, records):
    repo_id = local_hub.unique_id("reference")
    push(records[:2], repo_id)
    before = hub.head_sha(repo_id, repo_type="dataset")
    with pytest.raises(IncompatibleRecordsError, match="encoder differs"):
        push([make_record("org/new", encoder="another-encoder")], repo_id)
    assert hub.head_sha(repo_id, repo_type="dataset") == before


def test_push_never_rewrites_another_record(local_hub, records):
    repo_id = local_hub.unique_id("reference")
    push([records[0]], repo_id)
    different = make_record("org/m0", seed=123)
    with pytest.raises(PushConflictError, match="different record for org/m0"):
        push([different], repo_id)
    assert ReferenceStore.load(repo_id).records[0].to_dict() == records[0].to_dict()
    assert push([different], repo_id, overwrite=True).replaced == ["data/org/m0/local.parquet"]


def test_concurrent_pushes_both_land(local_hub):
    repo_id = local_hub.unique_id("reference")
    push([make_record("org/seed")], repo_id)
    barrier = threading.Barrier(4)
    errors: list[Exception] = []

    def worker(i: int) -> None:
        barrier.wait()
        try:
            push([make_record(f"org/writer{i}", seed=i)], repo_id)
        except Exception as err:  # collected and asserted below
            errors.append(err)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    ids = ReferenceStore.load(repo_id).model_ids
    assert sorted(ids) == ["org/seed"] + [f"org/writer{i}" for i in range(4)]


def test_concurrent_same_path_conflict_loses_nothing(local_hub):
    repo_id = local_hub.unique_id("reference")
    push([make_record("org/seed")], repo_id)
    candidates = [make_record("org/contested", seed=s) for s in (1, 2)]
    barrier = threading.Barrier(2)
    outcomes: list[object] = []

    def worker(record: DNARecord) -> None:
        barrier.wait()
        try:
            outcomes.append(push([record], repo_id))
        except PushConflictError as err:
            outcomes.append(err)

    threads = [threading.Thread(target=worker, args=(r,)) for r in candidates]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(isinstance(o, PushConflictError) for o in outcomes) == 1
    stored = {r.model_id: r for r in ReferenceStore.load(repo_id).records}
    assert set(stored) == {"org/seed", "org/contested"}
    winner = next(o for o in outcomes if not isinstance(o, Exception))
    assert stored["org/contested"].to_dict() in [c.to_dict() for c in candidates] and winner.committed


def test_cli_push_and_pull(local_hub, tmp_path, records):
    repo_id = local_hub.unique_id("reference")
    write_records(records[:2], tmp_path / "two.json")
    runner = CliRunner()
    out = runner.invoke(main, ["push", str(tmp_path / "two.json"), "--repo", repo_id])
    assert out.exit_code == 0, out.output
    assert "2 added" in out.output
    out = runner.invoke(main, ["push", str(tmp_path / "two.json"), "--repo", repo_id])
    assert out.exit_code == 0 and "nothing new" in out.output
    write_records([make_record("org/m0", seed=77)], tmp_path / "clash.json")
    out = runner.invoke(main, ["push", str(tmp_path / "clash.json"), "--repo", repo_id])
    assert out.exit_code == 1 and out.output.startswith("Error: ") and "Traceback" not in out.output
    proc = subprocess.run([sys.executable, "-m", "hf_dna", "pull", repo_id, "-o", str(tmp_path / "out")],
                          env=local_hub.env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "2 records" in proc.stdout
    assert sorted(ReferenceStore.load(tmp_path / "out").model_ids) == ["org/m0", "org/m1"]


def test_cli_push_store_dir_keeps_remote_lineage_rows(local_hub, tmp_path, records):
    repo_id = local_hub.unique_id("reference")
    push(ReferenceStore(records[:1], lineage={"org/m0": {"family": "remote-family"}}), repo_id)
    ReferenceStore.create(tmp_path / "store", records[:3], calibration={"fitted": True},
                          lineage={"org/m0": {"family": "local-family"}, "org/m2": {"family": "fam2"}})
    out = CliRunner().invoke(main, ["push", str(tmp_path / "store"), "--repo", repo_id])
    assert out.exit_code == 0, out.output
    assert "2 added" in out.output and "1 unchanged" in out.output
    pulled = pull(repo_id, tmp_path / "pulled")
    assert pulled.lineage("org/m0")["family"] == "remote-family"  # somebody else's row is never rewritten
    assert pulled.lineage("org/m2")["family"] == "fam2" and pulled.calibration == {"fitted": True}


def test_dataset_metadata_added_once():
    card = reference.with_dataset_metadata("# Title\n\ntext\n")
    assert card.startswith("---\nconfigs:") and card.endswith("# Title\n\ntext\n")
    assert reference.with_dataset_metadata(card) == card
    with_yaml = reference.with_dataset_metadata("---\nlicense: mit\n---\n# T\n")
    assert "license: mit" in with_yaml and "data/**/*.parquet" in with_yaml and with_yaml.endswith("# T\n")
