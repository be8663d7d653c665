"""The package layout cannot drift: layers, the Hub leaf, no import cycles, and the README's module map.

Every ``import`` of an hf_dna module counts, also those inside functions (a lazy import still couples).
"""
from __future__ import annotations

import ast
import importlib
import re
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "hf_dna"

#: package -> the hf_dna packages it must never import
FORBIDDEN = {
    "hf_dna.pipeline": ("hf_dna.evidence.relation", "hf_dna.reference", "hf_dna.audit", "hf_dna.report",
                        "hf_dna.cli"),
    "hf_dna.evidence": ("hf_dna.reference", "hf_dna.audit", "hf_dna.report", "hf_dna.cli"),
    "hf_dna.reference": ("hf_dna.audit", "hf_dna.report", "hf_dna.cli"),
    "hf_dna.audit": ("hf_dna.report", "hf_dna.cli"),
    "hf_dna.report": ("hf_dna.cli",),
    "hf_dna.scan": ("hf_dna.report", "hf_dna.cli"),
}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The hf_dna modules `name` imports (submodules where `from pkg import sub` names one)."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            subs = {f"{target}.{alias.name}" for alias in node.names} & known
            found.update(subs or {target})
    return {m for m in found if m.split(".")[0] in ("hf_dna", "tests")}


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    mods = modules()
    return {name: imports_of(name, path, set(mods)) - {name} for name, path in mods.items()}


def test_graph_sees_real_imports(graph):
    assert "hf_dna.pipeline.generate" in graph["hf_dna.pipeline.extract"]
    assert "hf_dna.hub" in graph["hf_dna.audit.declared"]  # `from .. import hub` resolves to the module
    assert "hf_dna.errors" in graph["hf_dna.hub"]


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layers(graph, layer):
    bad = [f"{m} imports {t}" for m, targets in graph.items() if m == layer or m.startswith(layer + ".")
           for t in targets if any(t == f or t.startswith(f + ".") for f in FORBIDDEN[layer])]
    assert not bad, bad


def test_hub_is_a_leaf(graph):
    assert graph["hf_dna.hub"] <= {"hf_dna.errors"}


def test_only_the_cli_imports_the_cli_and_nothing_imports_tests(graph):
    bad = [f"{m} imports {t}" for m, targets in graph.items() for t in targets
           if (t.startswith("hf_dna.cli") and not m.startswith(("hf_dna.cli", "hf_dna.__main__")))
           or t.startswith("tests")]
    assert not bad, bad


def test_no_import_cycles(graph):
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import connected_components

    names = sorted(graph)
    index = {n: i for i, n in enumerate(names)}
    rows, cols = zip(*[(index[m], index[t]) for m, ts in graph.items() for t in ts if t in index])
    adjacency = csr_matrix(([1] * len(rows), (rows, cols)), shape=(len(names), len(names)))
    _, labels = connected_components(adjacency, directed=True, connection="strong")
    cycles = [sorted(n for n in names if labels[index[n]] == label) for label in set(labels)
              if (labels == label).sum() > 1]
    assert not cycles, cycles


def test_old_import_paths_still_work():
    from hf_dna import _compat

    for old, new in _compat.ALIASES.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            assert importlib.import_module(old) is importlib.import_module(new)
    from hf_dna.extract import extract  # the documented public path

    assert extract.__module__ == "hf_dna.pipeline.extract"


def test_readme_module_map_matches_the_tree():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"<!-- module-map -->\n```\n(.*?)```", readme, re.S)
    assert block, "README.md lacks the module map block"
    actual = {str(p.relative_to(ROOT)) for p in PACKAGE.rglob("*.py")}
    assert _map_paths(block.group(1)) == actual


def _map_paths(block: str) -> set[str]:
    """Paths of the module map: an indented tree of folders (``name/``) and modules (``name.py``)."""
    paths, stack = set(), []
    for line in block.splitlines():
        match = re.match(r"^(\s*)([\w.]+/?)", line)
        if not match:
            continue
        depth = len(match.group(1)) // 2
        stack = stack[:depth]
        entry = match.group(2)
        if entry.endswith("/"):
            stack.append(entry)
            paths.add("".join(stack) + "__init__.py")
        elif entry.endswith(".py"):
            paths.add("".join(stack) + entry)
    return paths
