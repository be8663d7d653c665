"""The audit takes what users bring: answers to more probes than the reference has, a team's own unlabelled
reference, and a report that checks where it writes before doing any work."""
from __future__ import annotations

import json

from click.testing import CliRunner

from hf_dna.cli import main
from hf_dna.pipeline.probes import load_probe_set


def write_answers(path, prompts, model_id="my-org/m", style="answer"):
    with open(path, "w", encoding="utf-8") as out:
        for i, prompt in enumerate(prompts):
            out.write(json.dumps({"model_id": model_id, "probe": i, "prompt": prompt,
                                  "response": f"{style} {i}: {prompt[:40]}"}) + "\n")
    return path


def test_answers_to_all_600_paper_probes_are_audited_on_the_references_first_100(tmp_path):
    answers = write_answers(tmp_path / "answers.jsonl", load_probe_set("paper600").prompts)
    result = CliRunner().invoke(main, ["audit", "my-org/m", "--responses", str(answers), "--probes", "paper600",
                                       "--format", "json", "--quiet"], env={"HF_HUB_OFFLINE": "1"})
    assert result.exit_code == 0, result.output
    verdict = json.loads(result.stdout)
    assert verdict["record"]["probe_set"] == "paper600:100" and verdict["record"]["n_probes"] == 100
    assert any("first 100 of the 600 probes of paper600" in note for note in verdict["notes"])
    assert all(n["probability"] is not None for n in verdict["nearest"])


def test_a_teams_unlabelled_reference_gives_nearest_models_marked_uncalibrated(tmp_path):
    probes = tmp_path / "my-probes.jsonl"
    prompts = [f"Tell me about topic number {i}." for i in range(6)]
    probes.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in prompts), encoding="utf-8")
    rows = []
    for model, style in (("team/a", "alpha"), ("team/b", "beta"), ("team/c", "gamma")):
        rows += [{"model_id": model, "probe": i, "response": f"{style} says {i} {p}"} for i, p in enumerate(prompts)]
    responses = tmp_path / "answers.jsonl"
    responses.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    runner = CliRunner()
    built = runner.invoke(main, ["reference", "build", str(responses), "--probes", str(probes), "-o",
                                 str(tmp_path / "ref"), "--quiet"])
    assert built.exit_code == 0, built.output
    mine = write_answers(tmp_path / "m.jsonl", prompts, style="alpha says")
    result = runner.invoke(main, ["audit", "m", "--responses", str(mine), "--probes", str(probes), "--reference",
                                  str(tmp_path / "ref"), "--format", "json", "--quiet"], env={"HF_HUB_OFFLINE": "1"})
    assert result.exit_code == 0, result.output
    verdict = json.loads(result.stdout)
    assert [n["probability"] for n in verdict["nearest"]] == [None, None, None]
    assert verdict["nearest"][0]["model_id"] == "team/a"  # nearest by DNA distance
    assert any("uncalibrated" in note for note in verdict["notes"]) and verdict["flags"] == []
    text = runner.invoke(main, ["audit", "m", "--responses", str(mine), "--probes", str(probes), "--reference",
                                str(tmp_path / "ref"), "--quiet"], env={"HF_HUB_OFFLINE": "1"})
    assert text.exit_code == 0 and "P(related)=uncalibrated" in text.output


def test_an_unlabelled_reference_with_the_embedded_probes_borrows_the_embedded_calibration(tmp_path):
    from hf_dna.reference import ReferenceStore
    from hf_dna.reference.build import add_records

    embedded = ReferenceStore.default(probe_hash=load_probe_set("paper600:50").hash)
    add_records(tmp_path / "ref", embedded.records[:20])  # records only: no lineage, no calibration
    answers = write_answers(tmp_path / "m.jsonl", load_probe_set("paper600:50").prompts)
    result = CliRunner().invoke(main, ["audit", "m", "--responses", str(answers), "--reference", str(tmp_path / "ref"),
                                       "--format", "json", "--quiet"], env={"HF_HUB_OFFLINE": "1"})
    assert result.exit_code == 0, result.output
    verdict = json.loads(result.stdout)
    assert any("P(related) and decision points from the embedded store paper600-50" in n for n in verdict["notes"])
    assert all(0.0 <= n["probability"] <= 1.0 for n in verdict["nearest"])


def test_report_checks_its_output_directory_before_judging_anything(monkeypatch):
    from hf_dna.report import governance

    def judged(*args, **kwargs):
        raise AssertionError("the report judged models before checking where it writes")

    monkeypatch.setattr(governance, "entries_from_reference", judged)
    result = CliRunner().invoke(main, ["report", "--reference", "default", "-o", "/proc/hf-dna-cannot/write"])
    assert result.exit_code == 1 and result.output.startswith("Error: cannot write the report to")
    assert len(result.output.strip().splitlines()) == 1
