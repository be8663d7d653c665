"""Every command that writes files checks the place while its options are read: a bad output is one line and
exit 1 before any model is loaded, generated or audited, and nothing is left behind."""
from __future__ import annotations

import pytest
from click.testing import CliRunner

from hf_dna.cli import main


@pytest.fixture
def places(tmp_path):
    a_file = tmp_path / "a-file"
    a_file.write_text("mine")
    return {"under a file": str(a_file / "out"), "a file as a directory": str(a_file),
            "a directory as a file": str(tmp_path)}


COMMANDS = {  # command line with {out} where the output goes, and whether that output is a directory
    "extract": (["extract", "no-such-model", "-o", "{out}"], False),
    "audit": (["audit", "no-such-model", "-o", "{out}"], False),
    "scan": (["scan", "no-such-model", "-o", "{out}"], True),
    "pull": (["pull", "org/no-such-dataset", "-o", "{out}"], True),
    "reference build": (["reference", "build", "{responses}", "--probes", "rand-en-2", "-o", "{out}"], True),
    "reference add": (["reference", "add", "{responses}", "-o", "{out}"], True),
    "tree": (["tree", "{responses}", "--newick", "{out}"], False),
}


BAD = [(command, place) for command, (_, is_dir) in COMMANDS.items()
       for place in ("under a file", "a file as a directory" if is_dir else "a directory as a file")]


@pytest.mark.parametrize(("command", "place"), BAD)
def test_a_bad_output_place_fails_first_in_one_line(command, place, places, tmp_path, monkeypatch):
    import hf_dna.pipeline.extract

    args, _ = COMMANDS[command]
    monkeypatch.setattr(hf_dna.pipeline.extract, "extract", lambda *a, **k: pytest.fail("work began"))
    responses = tmp_path / "r.jsonl"
    responses.write_text('{"model_id": "m", "probe": 0, "response": "x"}\n')
    before = sorted(p.name for p in tmp_path.iterdir())
    result = CliRunner().invoke(main, [a.format(out=places[place], responses=responses) for a in args])
    assert result.exit_code == 1, result.output
    assert result.output.startswith("Error: cannot write ") and len(result.output.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == before and (tmp_path / "a-file").read_text() == "mine"
