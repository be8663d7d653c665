"""Governance reports: `hf-dna report` on 1, 2 and 300 models, a reference store, an org on the local Hub,
models without DNA, and bad input (unwritable output, incompatible records)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from hf_dna.cli import main
from hf_dna.report.mapping import classical_mds, stress
from hf_dna.pipeline.record import DNARecord, write_records
from hf_dna.report.governance import verdict_markdown
from hf_dna.report.tree import parse_newick
from tests.dna_synth import family_records, make_store, verdict_for

ROOT = Path(__file__).resolve().parents[1]
PNG = b"\x89PNG\r\n\x1a\n"


def _run(*args: str):
    result = CliRunner().invoke(main, list(args))
    return result


def _verdict_file(path: Path, n_families: int, per_family: int, flagged_every: int = 0) -> Path:
    records, families = family_records(n_families=n_families, per_family=per_family, seed=3)
    flag = {"code": "undeclared-base", "message": "ref/base is a close relative", "evidence": {"probability": 0.9}}
    verdicts = [verdict_for(r, families[r.model_id], [flag] if flagged_every and i % flagged_every == 0 else None)
                for i, r in enumerate(records)]
    path.write_text(json.dumps(verdicts))
    return path


def _report(out: Path) -> dict:
    data = json.loads((out / "report.json").read_text())
    html = (out / "report.html").read_text()
    assert "<img" not in html or "data:image/png;base64," in html  # self-contained: images inline
    assert 'src="http' not in html and "src='http" not in html
    return data


def test_classical_mds_reproduces_planar_distances():
    from scipy.spatial.distance import pdist, squareform

    points = [[0, 0], [3, 0], [0, 4], [3, 4], [1, 1]]
    d = squareform(pdist(points))
    coords = classical_mds(d)
    assert squareform(pdist(coords)) == pytest.approx(d, abs=1e-9)
    assert stress(d, coords) < 1e-9


def test_report_one_model(tmp_path):
    result = _run("report", "--verdicts", str(_verdict_file(tmp_path / "v.json", 1, 1)), "-o", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    data = _report(tmp_path / "out")
    assert [m["model"] for m in data["models"]] == ["org0/fam0-model-0"]
    assert data["newick"] is None and "fewer than two models" in data["notes"][0]
    assert "org0/fam0-model-0" in (tmp_path / "out" / "report.md").read_text()


def test_report_two_models_flags_and_figures(tmp_path):
    verdicts = _verdict_file(tmp_path / "v.json", 2, 1, flagged_every=2)
    result = _run("report", "--verdicts", str(verdicts), "-o", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    out = tmp_path / "out"
    data = _report(out)
    assert data["counts"] == {"clean": 1, "flagged": 1}
    assert sorted(parse_newick(data["newick"]).leaves()) == ["org0/fam0-model-0", "org1/fam1-model-0"]
    for name in ("map", "tree", "heatmap"):
        assert (out / f"{name}.png").read_bytes()[:8] == PNG
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 3
    assert "undeclared-base" in html and "ref/base is a close relative" in html and "probability: 0.9" in html
    assert "![map](map.png)" in (out / "report.md").read_text()


def test_report_300_models(tmp_path):
    verdicts = _verdict_file(tmp_path / "v.json", 10, 30, flagged_every=7)
    result = _run("report", "--verdicts", str(verdicts), "-o", str(tmp_path / "out"), "--method", "nj")
    assert result.exit_code == 0, result.output
    data = _report(tmp_path / "out")
    assert len(data["models"]) == 300 and len(data["map"]) == 300
    assert len(parse_newick(data["newick"]).leaves()) == 300
    assert not (tmp_path / "out" / "heatmap.png").exists() and "heatmap omitted" in " ".join(data["notes"])


@pytest.mark.parametrize("calibrated", [False, True])
def test_report_on_reference_store(tmp_path, calibrated):
    records, families = family_records(n_families=3, per_family=4)
    store = make_store(tmp_path / "store", records, families, calibrate=calibrated)
    result = _run("report", "--reference", str(store), "-o", str(tmp_path / "out"), "--quiet")
    assert result.exit_code == 0, result.output
    data = _report(tmp_path / "out")
    assert len(data["models"]) == 12
    for model in data["models"]:
        assert model["family"] == families[model["model"]]
        assert model["nearest"][0]["family"] == model["family"]  # well-separated synthetic families
        assert model["model"] not in [n["model_id"] for n in model["nearest"]]
        assert (model["verdict"] is not None) == calibrated
        assert (model["nearest"][0]["probability"] is not None) == calibrated
    if calibrated:  # same-family relatives not named in lineage.csv (no parents) are undeclared relatives
        assert data["counts"].get("flagged", 0) + data["counts"].get("clean", 0) == 12


def test_report_audits_records_and_keeps_failures(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # records only: no card to read
    records, families = family_records(n_families=3, per_family=4)
    store = make_store(tmp_path / "store", records[2:], families, calibrate=True)
    write_records(records[:2], tmp_path / "new.json")
    result = _run("report", "--records", str(tmp_path / "new.json"), "ghost-org/no-such-model",
                  "--reference", str(store), "-o", str(tmp_path / "out"), "--quiet")
    assert result.exit_code == 0, result.output
    data = _report(tmp_path / "out")
    by_model = {m["model"]: m for m in data["models"]}
    ghost = by_model["ghost-org/no-such-model"]
    assert ghost["record"] is None and ghost["error"].startswith("audit failed:")
    for rec in records[:2]:
        entry = by_model[rec.model_id]
        assert entry["verdict"] in ("clean", "flagged") and entry["nearest"][0]["family"] == "fam0"
    assert set(data["map"]) >= {records[0].model_id, records[1].model_id}  # plus reference relatives as context
    md = (tmp_path / "out" / "report.md").read_text()
    assert "**No DNA**: audit failed:" in md


def test_report_org_without_models(local_hub, tmp_path):
    result = subprocess.run([sys.executable, "-m", "hf_dna", "report", "--org", "nobody-here", "-o",
                             str(tmp_path / "out")], capture_output=True, text=True, env=local_hub.env(), timeout=120)
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip() == "Error: nobody-here has no models on the Hub: nothing to report"
    assert not (tmp_path / "out").exists()


def test_report_org_models_without_dna(local_hub, tmp_path):
    records, families = family_records(n_families=3, per_family=3)
    store = make_store(tmp_path / "store", records, families, calibrate=True)
    org = f"report-org-{os.getpid()}"
    local_hub.make_model(f"{org}/weightless", card={"base_model": "org0/fam0-model-0"})
    result = subprocess.run([sys.executable, "-m", "hf_dna", "report", "--org", org, "--reference", str(store),
                             "-o", str(tmp_path / "out"), "--quiet"], capture_output=True, text=True,
                            env=local_hub.env(), timeout=300)
    assert result.returncode == 0, result.stderr
    data = _report(tmp_path / "out")
    assert [m["model"] for m in data["models"]] == [f"{org}/weightless"]
    assert data["models"][0]["record"] is None and data["models"][0]["error"].startswith("audit failed:")


def test_report_unwritable_output(tmp_path):
    verdicts = _verdict_file(tmp_path / "v.json", 2, 1)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    for target in (blocker, blocker / "sub"):
        result = _run("report", "--verdicts", str(verdicts), "-o", str(target))
        assert result.exit_code == 1
        assert result.stderr.startswith("Error: cannot write the report to") and result.stderr.count("\n") == 1
    assert blocker.read_text() == "x"
    if os.geteuid() != 0:  # root ignores permission bits
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        result = _run("report", "--verdicts", str(verdicts), "-o", str(locked))
        assert result.exit_code == 1 and list(locked.iterdir()) == []


def test_report_incompatible_records(tmp_path):
    records, families = family_records(n_families=2, per_family=2)
    store = make_store(tmp_path / "store", records, families)
    odd = DNARecord.from_dict({**records[0].to_dict(), "model_id": "odd/dim", "dna": [0.5] * 16})
    write_records([odd], store / "data" / "odd" / "dim" / "local.parquet")
    result = _run("report", "--reference", str(store), "-o", str(tmp_path / "out"))
    assert result.exit_code == 1 and "dim" in result.stderr and result.stderr.count("\n") == 1
    mixed = tmp_path / "mixed.json"
    other = DNARecord.from_dict({**records[1].to_dict(), "encoder": "another-encoder"})
    mixed.write_text(json.dumps([verdict_for(records[0], "fam0"), verdict_for(other, "fam0")]))
    result = _run("report", "--verdicts", str(mixed), "-o", str(tmp_path / "out2"))
    assert result.exit_code == 1 and "encoder differs" in result.stderr
    assert not (tmp_path / "out").exists() and not (tmp_path / "out2").exists()


def test_verdict_markdown_single():
    records, families = family_records(n_families=1, per_family=1)
    flag = {"code": "unsupported-base", "message": "declared base\nis far", "evidence": {"distance": 0.81234}}
    text = verdict_markdown(verdict_for(records[0], "fam0", [flag]))
    assert text.startswith("## hf-dna audit: `org0/fam0-model-0`: flagged")
    assert "**unsupported-base**: declared base is far (evidence: distance: 0.8123)" in text
    assert "| `ref/base` | 0.1000 | 90% | fam0 |" in text


@pytest.mark.skipif(not shutil.which("chromium"), reason="chromium is not installed")
def test_report_renders_in_headless_chromium(tmp_path):
    verdicts = _verdict_file(tmp_path / "v.json", 3, 3, flagged_every=4)
    assert _run("report", "--verdicts", str(verdicts), "-o", str(tmp_path / "out")).exit_code == 0
    shot = tmp_path / "shot.png"
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "screenshot_report.sh"), str(tmp_path / "out" / "report.html"),
                           str(shot), "1200,1600"], capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    data = shot.read_bytes()
    assert data[:8] == PNG and len(data) > 50_000  # a blank page compresses to a few kB


def test_report_ignores_an_incompatible_reference_as_context(tmp_path):
    other, other_families = family_records(n_families=3, per_family=4, projection_seed=7)
    store = make_store(tmp_path / "store", other, other_families)
    verdicts = _verdict_file(tmp_path / "v.json", 2, 2)
    data = json.loads(verdicts.read_text())
    for verdict in data:  # nearest relatives that exist in the (incomparable) store
        verdict["nearest"][0]["model_id"] = "org2/fam2-model-0"
    verdicts.write_text(json.dumps(data))
    result = _run("report", "--verdicts", str(verdicts), "--reference", str(store), "-o", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    assert len(_report(tmp_path / "out")["map"]) == 4  # only the reported models: no incomparable context
