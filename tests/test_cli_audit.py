"""`hf-dna audit` through click's runner: formats, exit codes, and Hub repos on the local test server."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from hf_dna.cli import main
from hf_dna.pipeline.record import write_records
from tests.test_audit import query, world  # noqa: F401  (the synthetic reference fixture)


@pytest.fixture()
def alpha_like(world, tmp_path):  # noqa: F811
    """A DNA record file of a model that behaves like family alpha."""
    return str(write_records([query(world, "alpha")], tmp_path / "new.dna.json"))


def run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_json_and_exit_codes(world, alpha_like, monkeypatch):  # noqa: F811
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    ref = str(world[0])
    result = run("audit", "api/new", "--reference", ref, "--record", alpha_like, "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert list(data) == ["model", "declared", "nearest", "flags", "record", "verdict", "notes", "evidence",
                          "family_confidence", "relative_posterior"]
    assert set(data["evidence"]) >= {"weights", "behaviour"}  # what each kind of evidence said
    assert [f["code"] for f in data["flags"]] == ["undeclared-base"] and data["verdict"] == "flagged"
    assert data["family_confidence"] >= data["relative_posterior"]  # behaviour alone cleared the decision point
    assert run("audit", "api/new", "--reference", ref, "--record", alpha_like, "--fail-on",
               "undeclared-base,wrong-relation").exit_code == 3
    assert run("audit", "api/new", "--reference", ref, "--record", alpha_like, "--fail-on", "unsupported-base").exit_code == 0
    honest = run("audit", "api/new", "--reference", ref, "--record", alpha_like, "--base-model", "org/alpha-base",
                 "--fail-on", "any")
    assert honest.exit_code == 0 and "CLEAN" in honest.stdout


@pytest.mark.parametrize("args, message", [
    (("--fail-on", "bogus"), "unknown flag"),
    (("--record", "/nonexistent/x.json"), "no such record file"),
])
def test_errors_are_one_line_exit_1(world, alpha_like, args, message):  # noqa: F811
    base = ["audit", "api/new", "--reference", str(world[0]), "--base-model", "org/alpha-base"]
    if "--record" not in args:
        base += ["--record", alpha_like]
    result = CliRunner().invoke(main, [*base, *args])
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: ") and message in result.stderr and result.stderr.count("\n") == 1


def test_github_markdown_and_output_file(world, alpha_like, tmp_path, monkeypatch):  # noqa: F811
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    ref = str(world[0])
    github = run("audit", "api/new", "--reference", ref, "--record", alpha_like, "--format", "github",
                 "--fail-on", "undeclared-base")
    lines = github.stdout.splitlines()
    assert github.exit_code == 3 and lines[0].startswith("::error title=hf-dna undeclared-base::api/new: ")
    assert lines[-1].startswith("::notice title=hf-dna audit::api/new: flagged")
    out = tmp_path / "report.md"
    md = run("audit", "api/new", "--reference", ref, "--record", alpha_like, "--format", "markdown", "-o", str(out))
    assert md.exit_code == 0 and md.stdout == ""
    text = out.read_text()
    assert "`undeclared-base`" in text and "org/alpha-" in text and "HF_HUB_OFFLINE" in text


def test_hub_repo_with_and_without_base_model(world, alpha_like, local_hub):  # noqa: F811
    ref = str(world[0])
    honest = local_hub.make_model(card={"base_model": "org/alpha-base", "license": "mit"})
    silent = local_hub.make_model(card={"license": "mit"})
    result = run("audit", honest, "--reference", ref, "--record", alpha_like, "--format", "json")
    data = json.loads(result.stdout)
    assert data["declared"] == {"base_models": ["org/alpha-base"], "relation": "finetune", "source": "card"}
    assert data["flags"] == []
    data = json.loads(run("audit", silent, "--reference", ref, "--record", alpha_like, "--format", "json").stdout)
    assert data["declared"]["source"] == "card" and [f["code"] for f in data["flags"]] == ["undeclared-base"]
    missing = json.loads(run("audit", "test-org/does-not-exist", "--reference", ref, "--record", alpha_like,
                             "--format", "json").stdout)
    assert missing["declared"]["source"] == "none" and any("not on the Hub" in n for n in missing["notes"])


def test_publish_pr_shows_up_in_discussions(world, alpha_like, local_hub):  # noqa: F811
    from hf_dna import hub

    repo = local_hub.make_model(card={"license": "mit"}, body="# Silent model\n\nKeep this text.\n")
    result = run("audit", repo, "--reference", str(world[0]), "--record", alpha_like, "--publish", "pr", "--quiet")
    assert result.exit_code == 0, result.output
    prs = [d for d in hub.list_discussions(repo) if d["is_pull_request"]]
    assert len(prs) == 1
    card = hub.read_text(repo, "README.md", revision=f"refs/pr/{prs[0]['num']}")
    assert "undeclared-base" in card and "Keep this text." in card


TOPICS = {
    "cats": ["The cat purrs on the sofa", "Kittens chase a ball of wool", "My cat sleeps in the sun all day"],
    "money": ["Stocks fell as interest rates rose", "The bank raised its mortgage rates", "Investors sold bonds"],
    "space": ["The rocket reached orbit at dawn", "Astronomers found a new exoplanet", "The moon landing was live"],
    "food": ["Bake the bread for forty minutes", "Add salt and pepper to the soup", "Fresh pasta needs eggs"],
    "sport": ["The striker scored in extra time", "The marathon runners crossed the line", "A tennis final in Paris"],
}


def topic_texts(topic: str, variant: int) -> list[str]:
    """One response per probe (3 probes) in the voice of a 'family' (its topic), varied per model."""
    lines = TOPICS[topic]
    return [f"{lines[(p + variant) % 3]}. {lines[(p + 2 * variant + 1) % 3].lower()}." for p in range(3)]


@pytest.fixture(scope="module")
def text_reference(tmp_path_factory):
    """A reference built with the real encoder from texts: 5 topic 'families' of 3 models, rand-en-3 probes."""
    from hf_dna.evidence.relation import RelationModel
    from hf_dna.pipeline.extract import dna_from_texts
    from hf_dna.pipeline.probes import load_probe_set
    from hf_dna.reference.store import ReferenceStore

    probes = load_probe_set("rand-en-3")
    records, lineage = [], {}
    for topic in TOPICS:
        for variant, (suffix, parent) in enumerate([("base", ""), ("chat", f"org/{topic}-base"), ("v2", f"org/{topic}-base")]):
            mid = f"org/{topic}-{suffix}"
            records.append(dna_from_texts(mid, topic_texts(topic, variant), probes))
            lineage[mid] = {"model_id": mid, "family": topic, "parent": parent,
                            "relation": "finetune" if parent else "base", "confidence": "high", "note": ""}
    directory = tmp_path_factory.mktemp("text-ref")
    ReferenceStore.create(directory, records, lineage=lineage, calibration=RelationModel.fit(records, lineage).to_dict())
    return str(directory)


def test_responses_end_to_end_on_hub_repos(text_reference, local_hub, tmp_path):
    """--responses: DNA from a responses file, card from the (local) Hub, reference from a store dir."""
    responses = tmp_path / "responses.jsonl"
    responses.write_text("".join(json.dumps({"probe": p, "response": t}) + "\n"
                                 for p, t in enumerate(topic_texts("space", 4))))
    silent = local_hub.make_model(card={"license": "apache-2.0"})
    honest = local_hub.make_model(card={"base_model": "org/space-base"})
    wrong = local_hub.make_model(card={"base_model": "org/food-base"})
    verdicts = {}
    for name, repo in (("silent", silent), ("honest", honest), ("wrong", wrong)):
        result = run("audit", repo, "--reference", text_reference, "--responses", str(responses), "--format", "json")
        assert result.exit_code == 0, result.output
        verdicts[name] = json.loads(result.stdout)
    assert verdicts["silent"]["nearest"][0]["family"] == "space"
    assert [f["code"] for f in verdicts["silent"]["flags"]] == ["undeclared-base"]
    assert verdicts["honest"]["flags"] == []
    assert {f["code"] for f in verdicts["wrong"]["flags"]} == {"unsupported-base", "undeclared-base"}
    assert verdicts["honest"]["record"]["probe_set"] == "rand-en-3"  # probes taken from the reference's config
    assert "lex" in verdicts["honest"]["record"]["evidence"]  # evidence vectors computed as for reference records


def test_generation_options_mirror_extract_with_paper_defaults():
    from hf_dna.cli.audit import _settings, audit_cmd

    names = {p.name for p in audit_cmd.params}
    assert {"max_new_tokens", "batch_size", "device", "gguf_file"} <= names
    settings = _settings({"max_new_tokens": 32, "batch_size": 2, "gguf_file": None})
    assert (settings.sampling, settings.chat_template, settings.temperature, settings.top_p, settings.seed) == (
        True, "off", 0.7, 0.9, 42)
    assert (settings.max_new_tokens, settings.batch_size) == (32, 2)
