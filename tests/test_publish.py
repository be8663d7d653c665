"""Publishing: the model-card section (markers, replace-not-duplicate), card PRs and findings rows on the local Hub."""
from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from hf_dna import hub
from hf_dna.audit import publish
from hf_dna.cli import main
from hf_dna.errors import InvalidInputError
from hf_dna.audit.publish import END_MARKER, START_MARKER, card_with_section, render_card_section


def make_verdict(model: str, flag: bool = True, distance: float = 0.0123) -> dict:
    return {
        "model": model,
        "declared": {"base_models": [], "relation": None},
        "nearest": [{"model_id": "HuggingFaceTB/SmolLM2-135M", "distance": distance, "probability": 0.97,
                     "family": "smollm2"},
                    {"model_id": "google/gemma-3-270m", "distance": 0.4, "probability": 0.02, "family": "gemma-3"}],
        "flags": [{"code": "undeclared-base", "message": "close relative HuggingFaceTB/SmolLM2-135M is not declared",
                   "evidence": {"distance": distance}}] if flag else [],
        "record": {"model_id": model, "revision": "0123456789abcdef0123", "dim": 128, "probe_set": "paper600",
                   "n_probes": 600, "probe_hash": "ab" * 32, "encoder": "sentence-transformers/all-MiniLM-L6-v2",
                   "projection": "jl-blockwise", "projection_seed": 42, "hf_dna_version": "0.1.0"},
    }


def test_section_renders_verdict():
    section = render_card_section(make_verdict("org/child"))
    assert section.startswith(START_MARKER) and section.rstrip().endswith(END_MARKER)
    assert "`undeclared-base`" in section and "HuggingFaceTB/SmolLM2-135M" in section and "0.0123" in section
    assert "0.97" in section and "paper600" in section and "\n\n\n" not in section
    clean = render_card_section(make_verdict("org/child", flag=False))
    assert "No lineage findings" in clean and "undeclared-base" not in clean


def test_card_with_section_replaces_never_duplicates():
    card = "---\nlicense: mit\n---\n# Title\n\nIntro text.\n"
    first = card_with_section(card, render_card_section(make_verdict("o/m", distance=0.1)))
    assert first.startswith(card) and first.count(START_MARKER) == 1
    second = card_with_section(first + "\n## Footer\nkept\n", render_card_section(make_verdict("o/m", distance=0.2)))
    assert second.count(START_MARKER) == 1 and second.count(END_MARKER) == 1
    assert "0.2000" in second and "0.1000" not in second
    assert second.startswith(card) and second.endswith("## Footer\nkept\n")
    doubled = first + first[len(card):]  # a card that somehow holds two sections
    assert card_with_section(doubled, render_card_section(make_verdict("o/m"))).count(START_MARKER) == 1
    assert card_with_section(None, "S\n") == "S\n"


def test_card_pr_appears_in_discussions_and_rerun_replaces(local_hub):
    body = "# My model\n\nHand-written text that must stay.\n"
    repo_id = local_hub.make_model(card={"license": "mit"}, body=body)
    url = publish.open_card_pr(repo_id, make_verdict(repo_id, distance=0.1), token=local_hub.token)
    [pr] = hub.list_discussions(repo_id)
    assert pr["url"] == url and pr["is_pull_request"] and pr["title"] == publish.PR_TITLE
    card = hub.read_text(repo_id, "README.md", revision=f"refs/pr/{pr['num']}")
    assert card.count(START_MARKER) == 1 and "Hand-written text that must stay." in card and "license: mit" in card

    # identical re-run: the open PR already proposes this card -> same URL, no new PR
    assert publish.open_card_pr(repo_id, make_verdict(repo_id, distance=0.1)) == url
    assert len(hub.list_discussions(repo_id)) == 1

    # the card was merged with an old section; a new verdict replaces that section, once
    hub.commit_files(repo_id, {"README.md": card}, "merge the PR by hand")
    url2 = publish.open_card_pr(repo_id, make_verdict(repo_id, distance=0.3))
    assert url2 != url
    new_card = hub.read_text(repo_id, "README.md", revision=f"refs/pr/{url2.rsplit('/', 1)[1]}")
    assert new_card.count(START_MARKER) == 1 and "0.3000" in new_card and "0.1000" not in new_card
    assert new_card.split(START_MARKER)[0] == card.split(START_MARKER)[0]

    # the merged card already holds exactly this section: no PR, the card's URL
    before = len(hub.list_discussions(repo_id))
    assert publish.open_card_pr(repo_id, make_verdict(repo_id, distance=0.1)).endswith(f"{repo_id}/blob/main/README.md")
    assert len(hub.list_discussions(repo_id)) == before


def test_card_pr_on_repo_without_readme(local_hub):
    repo_id = local_hub.make_model(files={"config.json": "{}"})
    url = publish.open_card_pr(repo_id, make_verdict(repo_id))
    card = hub.read_text(repo_id, "README.md", revision=f"refs/pr/{url.rsplit('/', 1)[1]}")
    assert card.startswith(f"# {repo_id}\n") and card.count(START_MARKER) == 1


def test_findings_row_pushed_and_read_back(local_hub, tmp_path):
    repo_id = local_hub.unique_id("findings")
    verdict = make_verdict("org/child")
    path = publish.push_findings_row(repo_id, verdict, token=local_hub.token)
    assert path == "findings/org/child/0123456789abcdef0123.parquet"
    publish.push_findings_row(repo_id, make_verdict("other-org/model", flag=False))
    row = pq.read_table(hub.download_file(repo_id, path, repo_type="dataset")).to_pylist()[0]
    assert row["model_id"] == "org/child" and row["flags"] == ["undeclared-base"]
    assert row["nearest_model"] == "HuggingFaceTB/SmolLM2-135M" and row["nearest_probability"] == 0.97
    assert json.loads(row["flags_json"])[0]["evidence"] == {"distance": 0.0123}
    assert row["summary"].startswith("org/child@0123456789ab: undeclared-base")
    files = hub.list_repo_files(repo_id, repo_type="dataset")
    assert "README.md" in files and "findings/other-org/model/0123456789abcdef0123.parquet" in files
    bare = {"model": "solo-model", "declared": {"base_models": ["x/y"], "relation": "finetune"}}  # no DNA, no flags
    assert publish.push_findings_row(repo_id, bare) == "findings/_/solo-model/local.parquet"

    import datasets

    table = datasets.load_dataset(repo_id, split="train", cache_dir=str(tmp_path / "datasets-cache"))
    assert sorted(table["model_id"]) == ["org/child", "other-org/model", "solo-model"]


def test_bad_verdict_is_a_clear_error():
    with pytest.raises(InvalidInputError, match="model"):
        render_card_section({"flags": []})


def test_cli_publish(local_hub, tmp_path):
    repo_id = local_hub.make_model(card={"license": "mit"})
    verdict_file = tmp_path / "verdict.json"
    verdict_file.write_text(json.dumps(make_verdict(repo_id)))
    runner = CliRunner()
    out = runner.invoke(main, ["publish", str(verdict_file), "--print-section"])
    assert out.exit_code == 0 and out.output.startswith(START_MARKER)
    out = runner.invoke(main, ["publish", str(verdict_file), "--card-pr"])
    assert out.exit_code == 0 and "/discussions/1" in out.output
    out = runner.invoke(main, ["publish", str(tmp_path / "missing.json"), "--card-pr"])
    assert out.exit_code == 1 and out.output.startswith("Error: cannot read verdict")
