"""Trees: UPGMA / neighbour joining, Newick round trips, the `hf-dna tree` command."""
from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from hf_dna.cli import main
from hf_dna.errors import IncompatibleRecordsError, InvalidInputError
from hf_dna.pipeline.record import write_records
from hf_dna.report.tree import build_tree, neighbor_joining, parse_newick, quote_label, upgma
from tests.dna_synth import family_records, make_store

# Saitou & Nei's worked example (also Wikipedia's): an additive matrix NJ must reproduce exactly.
ADDITIVE = np.array([[0, 5, 9, 9, 8], [5, 0, 10, 10, 9], [9, 10, 0, 8, 7], [9, 10, 8, 0, 3], [8, 9, 7, 3, 0]], float)


def _leaf_lengths(root):
    return {n.name: n.length for n in root.walk() if n.is_leaf}


def test_nj_recovers_additive_tree():
    root = neighbor_joining(ADDITIVE, list("abcde"))
    assert _leaf_lengths(root) == pytest.approx({"a": 2, "b": 3, "c": 4, "d": 2, "e": 1})
    assert frozenset("ab") in root.splits() and frozenset("de") in root.splits()
    depth = {}
    for node in root.walk():  # midpoint rooting: the two ends of the longest path (b-c, 10) sit 5 from the root
        for child in node.children:
            depth[id(child)] = depth.get(id(node), 0.0) + child.length
    leaf_depth = {n.name: depth[id(n)] for n in root.walk() if n.is_leaf}
    assert leaf_depth["b"] == pytest.approx(5) and max(leaf_depth.values()) == pytest.approx(5)


def test_upgma_heights_are_half_distances():
    root, link = upgma(ADDITIVE, list("abcde"))
    assert link.shape == (4, 4)
    assert _leaf_lengths(root)["d"] == pytest.approx(1.5)  # d-e merge at distance 3
    assert frozenset("de") in root.clades()


@pytest.mark.parametrize("method", ["upgma", "nj"])
def test_families_form_clades(method):
    records, families = family_records(n_families=4, per_family=5)
    tree = build_tree(records, method=method)
    groups = tree.root.clades() if method == "upgma" else tree.root.splits()
    for fam in set(families.values()):
        assert frozenset(m for m, f in families.items() if f == fam) in groups


def test_newick_round_trip_with_awkward_labels():
    labels = ["org/model-1", "it's (odd): name, really", "with space", "x;y", "ünï"]
    d = np.array([[0, 2, 4, 6, 6], [2, 0, 4, 6, 6], [4, 4, 0, 6, 6], [6, 6, 6, 0, 2], [6, 6, 6, 2, 0]], float)
    root, _ = upgma(d, labels)
    text = root.to_newick()
    assert text.endswith(";") and "'it''s (odd): name, really'" in text
    back = parse_newick(text)
    assert sorted(back.leaves()) == sorted(labels)
    assert back.to_newick() == text
    assert _leaf_lengths(back)["org/model-1"] == pytest.approx(1.0)
    assert quote_label("plain/id-1.5") == "plain/id-1.5"


def test_newick_parses_other_tools_output():
    root = parse_newick("((A:0.1,B:0.2)90:0.3,'C D':0.4)root;")
    assert root.name == "root" and sorted(root.leaves()) == ["A", "B", "C D"]
    assert [c.name for c in root.children] == ["90", "C D"]
    with pytest.raises(InvalidInputError):
        parse_newick("((A,B);")


def test_deep_tree_has_no_recursion_limit():
    n = 1500  # a caterpillar: each model slightly further from the first
    d = np.abs(np.subtract.outer(np.arange(n), np.arange(n))).astype(float)
    root, _ = upgma(d, [f"m{i}" for i in range(n)])
    assert len(parse_newick(root.to_newick()).leaves()) == n


def test_tree_refuses_bad_input():
    records, _ = family_records(n_families=1, per_family=2)
    with pytest.raises(InvalidInputError, match="at least two"):
        build_tree(records[:1])
    other, _ = family_records(n_families=1, per_family=1, projection_seed=7)
    with pytest.raises(IncompatibleRecordsError, match="projection_seed"):
        build_tree(records + other)
    with pytest.raises(InvalidInputError, match="method"):
        build_tree(records, method="mp")


def test_tree_cli_records_and_reference(tmp_path):
    records, families = family_records(n_families=3, per_family=3)
    write_records(records, tmp_path / "recs.json")
    runner = CliRunner()
    result = runner.invoke(main, ["tree", str(tmp_path / "recs.json"), "--method", "nj"])
    assert result.exit_code == 0, result.output
    assert sorted(parse_newick(result.stdout.strip()).leaves()) == sorted(families)

    store = make_store(tmp_path / "store", records, families)
    newick, png = tmp_path / "t.nwk", tmp_path / "t.png"
    result = runner.invoke(main, ["tree", "--reference", str(store), "--newick", str(newick), "--png", str(png)])
    assert result.exit_code == 0, result.output
    assert len(parse_newick(newick.read_text()).leaves()) == 9
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_tree_cli_errors_are_one_line(tmp_path):
    records, _ = family_records(n_families=1, per_family=2)
    other, _ = family_records(n_families=1, per_family=1, projection_seed=7)
    write_records(records, tmp_path / "a.json")
    write_records(other, tmp_path / "b.json")
    runner = CliRunner()
    for args, needle in [([str(tmp_path / "a.json"), str(tmp_path / "b.json")], "projection_seed differs"),
                         ([], "either RECORDS or --reference"),
                         ([str(tmp_path / "a.json"), "--png", str(tmp_path / "a.json" / "x.png")], "cannot write")]:
        result = runner.invoke(main, ["tree", *args])
        assert result.exit_code == 1, result.output
        assert needle in result.stderr and result.stderr.count("\n") == 1 and "Traceback" not in result.output


def test_tree_distances_evidence_and_relation(tmp_path):
    records, families = family_records(n_families=3, per_family=4)
    store = make_store(tmp_path / "store", records, families, calibrate=True)
    runner = CliRunner()
    for distance in ("evidence", "relation"):
        result = runner.invoke(main, ["tree", "--reference", str(store), "--distance", distance])
        assert result.exit_code == 0, result.output
        clades = parse_newick(result.stdout.strip()).clades()
        for fam in set(families.values()):
            assert frozenset(m for m, f in families.items() if f == fam) in clades
    write_records(records, tmp_path / "recs.json")
    result = runner.invoke(main, ["tree", str(tmp_path / "recs.json"), "--distance", "relation"])
    assert result.exit_code == 1 and "needs a calibrated reference store" in result.stderr


def test_tree_on_the_embedded_default_store(tmp_path):
    from hf_dna.reference.store import ReferenceStore, default_store_dirs

    if not default_store_dirs():
        pytest.skip("no embedded reference store in this checkout")
    store = ReferenceStore.default()
    result = CliRunner().invoke(main, ["tree", "--reference", "default", "--newick", str(tmp_path / "t.nwk")])
    assert result.exit_code == 0, result.output
    assert sorted(parse_newick((tmp_path / "t.nwk").read_text()).leaves()) == sorted(store.model_ids)


def test_png_without_matplotlib_is_a_one_line_error(tmp_path):
    import subprocess
    import sys

    records, _ = family_records(n_families=1, per_family=3)
    write_records(records, tmp_path / "recs.json")
    code = ("import sys; sys.modules['matplotlib'] = None; from hf_dna.cli import main; "
            f"main(['tree', {str(tmp_path / 'recs.json')!r}, '--png', {str(tmp_path / 't.png')!r}])")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert proc.stderr.strip() == "Error: figures need matplotlib: pip install matplotlib"
    assert not (tmp_path / "t.png").exists()
