"""`hf-dna reference build`: responses files -> a loadable store with evidence and calibration."""
from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from hf_dna.evidence.relation import RelationModel
from hf_dna.cli import main
from hf_dna.pipeline.record import read_records
from hf_dna.reference.store import DEFAULT_ROOT, ReferenceStore

MODELS = {  # model -> family; 3 families so the relation model can be fitted
    "Qwen/Qwen2.5-7B": "qwen2.5", "Qwen/Qwen2.5-7B-Instruct": "qwen2.5",
    "01-ai/Yi-6B": "yi", "01-ai/Yi-6B-Chat": "yi",
    "EleutherAI/pythia-1b": "pythia", "EleutherAI/pythia-2.8b": "pythia",
}


@pytest.fixture(scope="module")
def tiny_responses(shared_responses, tmp_path_factory):
    table = pq.read_table(shared_responses / "paper600.parquet", columns=["model_id", "probe", "response"],
                          filters=[("probe", "<", 4)]).to_pylist()
    rows = [r for r in table if r["model_id"] in MODELS]
    assert {r["model_id"] for r in rows} == set(MODELS)
    out = tmp_path_factory.mktemp("resp")
    path = out / "responses.jsonl"
    rows += [{"model_id": "org/failed-run", "probe": p, "response": " " if p else "x"} for p in range(4)]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    lineage = out / "lineage.csv"
    lineage.write_text("model_id,family,parent,relation,confidence,note\n" + "".join(
        f"{m},{f},,base,high,\n" for m, f in MODELS.items()), encoding="utf-8")
    return path, lineage


def test_build_cli_writes_a_loadable_store(tiny_responses, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    responses, lineage = tiny_responses
    out = tmp_path / "store"
    result = CliRunner().invoke(main, ["reference", "build", str(responses), "--probes", "paper600:4",
                                       "--lineage", str(lineage), "-o", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    store = ReferenceStore.load(out)
    assert sorted(store.model_ids) == sorted(MODELS) and store.config["probe_set"] == "paper600:4"
    record = next(r for r in store.records if r.model_id == "01-ai/Yi-6B")
    assert record.dim == 128 and len(record.evidence["lex"]) > 0 and record.generation["temperature"] == 0.7
    assert read_records(out / "data" / "01-ai" / "Yi-6B" / "reference.parquet")[0].to_dict() == record.to_dict()
    model = RelationModel.from_dict(store.calibration)
    assert model.n_labelled == 6
    readme = (out / "README.md").read_text()
    assert "github.com/JerryLife/dna-web" in readme and "hf-dna reference build" in readme
    assert "org/failed-run" not in store.model_ids and "`org/failed-run`" in readme  # 3 of 4 responses empty
    info = CliRunner().invoke(main, ["reference", "info", str(out), "--json"])
    assert info.exit_code == 0 and json.loads(info.output)["records"] == 6
    assert json.loads(info.output)["relative_posterior"] == 0.95  # no operating point measured on it: the default


def test_build_refuses_bad_responses(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    result = CliRunner().invoke(main, ["reference", "build", str(empty), "--probes", "paper600:4", "-o",
                                       str(tmp_path / "out")])
    assert result.exit_code == 1 and result.output.startswith("Error:") and not (tmp_path / "out").exists()


def test_embedded_stores_are_readable_as_records():
    dirs = [d for d in DEFAULT_ROOT.iterdir() if (d / "hf-dna.json").is_file()] if DEFAULT_ROOT.is_dir() else []
    if not dirs:
        pytest.skip("no embedded store built")
    for directory in dirs:
        config = json.loads((directory / "hf-dna.json").read_text())
        first = next((directory / "data").rglob("*.parquet"))
        record = read_records(first)[0]
        assert record.probe_hash == config["probe_hash"] and record.dim == config["dim"] == 128
        assert RelationModel.from_dict(json.loads((directory / "calibration.json").read_text())).n_records > 100
        assert "JerryLife/dna-web" in (directory / "README.md").read_text()


def test_reference_add_lists_models_under_its_own_heading_when_later_sections_follow():
    from hf_dna.reference.build import ADDED_HEADING, _with_added_section

    card = f"# store\n\n{ADDED_HEADING}\n\n- `a`: 1 record(s) added\n\n## Other notes\n\n- something else\n"
    out = _with_added_section(card, ["b"], ["0 record(s) added, 1 replaced"])
    section = out.split(ADDED_HEADING, 1)[1].split("\n## ", 1)[0]
    assert "`a`" in section and "`b`: 0 record(s) added, 1 replaced" in section
    assert out.endswith("## Other notes\n\n- something else\n")
    assert _with_added_section("# store\n", ["c"], ["x"]) == f"# store\n\n{ADDED_HEADING}\n\n- `c`: x\n"


def test_build_reads_the_responses_before_it_loads_the_encoder(tmp_path, monkeypatch):
    from hf_dna.reference import build
    from hf_dna.errors import ResponsesFileError

    monkeypatch.setattr(build, "load_encoder", lambda *a, **k: pytest.fail("encoder loaded for a bad file"))
    bad = tmp_path / "r.jsonl"
    bad.write_text('{"model_id": "m", "probe": 7, "response": "x"}\n')
    with pytest.raises(ResponsesFileError, match="outside"):
        build.build_store([bad], "rand-en-2", None, tmp_path / "store")
    assert not (tmp_path / "store").exists()
