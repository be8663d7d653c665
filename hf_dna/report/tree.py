"""Phylogenetic trees of DNA records: UPGMA (scipy average linkage) and neighbour joining, Newick in and out.

Distances are cosine distances between DNAs, by default after centring on the mean DNA of the set (by the
linearity of the projection that is per-probe centring; it removes the shared "any LM" component so that
lineage, not style, dominates). Trees are plain `Node` objects so callers can walk clades without a library.
"""
from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from ..errors import InvalidInputError
from ..evidence.relation import SET_KINDS, RelationModel, pairwise_similarity, record_vectors
from ..pipeline.dna import cosine_distance_matrix
from ..pipeline.record import DNARecord, check_compatible

METHODS = ("upgma", "nj")
DISTANCES = ("dna", "evidence", "relation")


@dataclass
class Node:
    """A tree node: leaves carry a `name`; `length` is the branch length to the parent."""

    name: str | None = None
    children: list[Node] = field(default_factory=list)
    length: float = 0.0

    @property
    def is_leaf(self) -> bool:
        return not self.children

    def leaves(self) -> list[str]:
        """Leaf names below this node, left to right."""
        return [n.name for n in self.walk() if n.is_leaf]

    def walk(self) -> Iterator[Node]:
        """Pre-order traversal (iterative: trees of thousands of leaves are fine)."""
        stack = [self]
        while stack:
            node = stack.pop()
            yield node
            stack.extend(reversed(node.children))

    def clades(self) -> list[frozenset[str]]:
        """Leaf sets of every node (each clade of the rooted tree, leaves and the root included)."""
        below: dict[int, frozenset[str]] = {}
        for node in reversed(list(self.walk())):  # children before parents
            below[id(node)] = frozenset([node.name]) if node.is_leaf else frozenset().union(
                *(below[id(c)] for c in node.children))
        return list(below.values())

    def splits(self) -> list[frozenset[str]]:
        """Clades and their complements: the leaf sets separated by some edge, whatever the root (for NJ)."""
        clades = self.clades()
        everything = max(clades, key=len)
        return list(set(clades) | {everything - c for c in clades})

    def to_newick(self) -> str:
        """Newick text (labels quoted where needed, branch lengths to 6 significant digits), ending in ';'."""
        return _newick(self) + ";"


@dataclass
class PhyloTree:
    """A tree built from records, with the distance matrix it came from."""

    root: Node
    labels: list[str]
    distances: np.ndarray
    method: str
    linkage: np.ndarray | None = None  # scipy linkage matrix (UPGMA only), for dendrogram plots

    @property
    def newick(self) -> str:
        return self.root.to_newick()


# ---------------------------------------------------------------------------------------------- distances

def record_labels(records: list[DNARecord]) -> list[str]:
    """Unique display labels: the model id, plus `@rev` when a model appears at several revisions."""
    counts: dict[str, int] = {}
    for rec in records:
        counts[rec.model_id] = counts.get(rec.model_id, 0) + 1
    labels = [r.model_id if counts[r.model_id] == 1 else f"{r.model_id}@{(r.revision or 'local')[:7]}" for r in records]
    seen: dict[str, int] = {}
    unique = []
    for label in labels:
        seen[label] = seen.get(label, 0) + 1
        unique.append(label if seen[label] == 1 else f"{label}#{seen[label]}")
    return unique


#: centre a set on its own mean only from this size on (the mean of a few models is mostly those models)
MIN_SELF_CENTRE = 10


def dna_distances(records: list[DNARecord], center: bool = True, mean: np.ndarray | None = None) -> np.ndarray:
    """Cosine distance matrix between the records' DNAs (refuses incompatible records).

    With `center`, DNAs are first centred: on `mean` (e.g. the reference store's mean DNA) when given, else on
    the set's own mean when the set has at least `MIN_SELF_CENTRE` records, else not at all.
    """
    check_compatible(records)
    vectors = np.stack([r.vector for r in records]).astype(np.float64)
    if center and mean is not None:
        vectors = vectors - np.asarray(mean, dtype=np.float64)
    elif center and len(records) >= MIN_SELF_CENTRE:
        vectors = vectors - vectors.mean(axis=0)
    return cosine_distance_matrix(vectors)


# ---------------------------------------------------------------------------------------------- methods

def upgma(distances: np.ndarray, labels: list[str]) -> tuple[Node, np.ndarray]:
    """UPGMA (average linkage) via scipy; returns the root and the linkage matrix. Heights are distance / 2."""
    from scipy.cluster.hierarchy import linkage, to_tree
    from scipy.spatial.distance import squareform

    condensed = squareform(_symmetric(distances), checks=False)
    link = linkage(condensed, method="average")
    scipy_root = to_tree(link)

    def convert(node, parent_height: float) -> Node:
        height = node.dist / 2.0
        out = Node(length=max(parent_height - height, 0.0))
        if node.is_leaf():
            out.name = labels[node.id]
        else:
            out.children = [convert(node.left, height), convert(node.right, height)]
        return out

    import sys

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 4 * len(labels) + 100))
    return convert(scipy_root, scipy_root.dist / 2.0), link


def neighbor_joining(distances: np.ndarray, labels: list[str]) -> Node:
    """Saitou-Nei neighbour joining (O(n^3) numpy); the unrooted result is rooted at its midpoint.

    Negative branch lengths (possible with non-additive distances) are clamped to 0, moving the remainder
    to the sister branch as is customary.
    """
    d = _symmetric(distances).copy()
    nodes = [Node(name=label) for label in labels]
    while len(nodes) > 2:
        n = len(nodes)
        totals = d.sum(axis=1)
        q = (n - 2) * d - totals[:, None] - totals[None, :]
        np.fill_diagonal(q, np.inf)
        i, j = np.unravel_index(np.argmin(q), q.shape)
        i, j = (int(i), int(j)) if i < j else (int(j), int(i))
        length_i = 0.5 * d[i, j] + (totals[i] - totals[j]) / (2 * (n - 2))
        length_i = min(max(length_i, 0.0), d[i, j])
        nodes[i].length, nodes[j].length = length_i, max(d[i, j] - length_i, 0.0)
        joined = Node(children=[nodes[i], nodes[j]])
        new_row = 0.5 * (d[i] + d[j] - d[i, j])
        keep = [k for k in range(n) if k not in (i, j)]
        d = np.block([[d[np.ix_(keep, keep)], new_row[keep, None]], [new_row[None, keep], np.zeros((1, 1))]])
        nodes = [nodes[k] for k in keep] + [joined]
    if len(nodes) == 1:
        return nodes[0]
    a, b = nodes
    a.length = b.length = max(d[0, 1], 0.0) / 2.0
    return midpoint_root(Node(children=[a, b]))


def midpoint_root(root: Node) -> Node:
    """Re-root a tree at the midpoint of its longest leaf-to-leaf path (the usual rooting for NJ trees)."""
    nodes = list(root.walk())
    if len(nodes) < 3:
        return root
    adjacent: dict[int, list[tuple[Node, float]]] = {id(n): [] for n in nodes}
    for node in nodes:
        for child in node.children:
            adjacent[id(node)].append((child, child.length))
            adjacent[id(child)].append((node, child.length))

    def distances_from(start: Node) -> tuple[dict[int, float], dict[int, Node | None]]:
        dist, prev, stack = {id(start): 0.0}, {id(start): None}, [start]
        while stack:
            u = stack.pop()
            for v, length in adjacent[id(u)]:
                if id(v) not in dist:
                    dist[id(v)], prev[id(v)] = dist[id(u)] + length, u
                    stack.append(v)
        return dist, prev

    leaves = [n for n in nodes if n.is_leaf]
    first, _ = distances_from(leaves[0])
    end_a = max(leaves, key=lambda n: first[id(n)])
    dist, prev = distances_from(end_a)
    end_b = max(leaves, key=lambda n: dist[id(n)])
    half = dist[id(end_b)] / 2.0
    lower = end_b
    while dist[id(prev[id(lower)])] > half:
        lower = prev[id(lower)]
    upper = prev[id(lower)]
    return Node(children=[_orient(lower, upper, dist[id(lower)] - half, adjacent),
                          _orient(upper, lower, half - dist[id(upper)], adjacent)])


def _orient(start: Node, came_from: Node, length: float, adjacent: dict[int, list[tuple[Node, float]]]) -> Node:
    """Copy of the subtree hanging from `start` away from `came_from`, unary nodes merged into their child."""
    top = Node(name=start.name if start.is_leaf else None, length=max(length, 0.0))
    stack = [(start, came_from, top)]
    while stack:
        old, parent_old, new = stack.pop()
        for neighbour, edge in adjacent[id(old)]:
            if neighbour is parent_old:
                continue
            child = Node(name=neighbour.name if neighbour.is_leaf else None, length=edge)
            new.children.append(child)
            stack.append((neighbour, old, child))
    for node in reversed(list(top.walk())):  # merge unary nodes (the old root, once re-rooted)
        node.children = [_skip_unary(c) for c in node.children]
    return _skip_unary(top)


def _skip_unary(node: Node) -> Node:
    while len(node.children) == 1:
        only = node.children[0]
        node = Node(name=only.name, children=only.children, length=node.length + only.length)
    return node


def evidence_distances(records: list[DNARecord], center: bool = True) -> np.ndarray:
    """Mean of the centred cosine distances over every evidence vector all records carry (the DNA, plus e.g. the
    wider embedding projection and lexical sketch that `hf-dna reference build` stores in `record.evidence`)."""
    check_compatible(records)
    vectors = [record_vectors(r) for r in records]
    kinds = sorted(set.intersection(*(set(v) for v in vectors)))
    total = np.zeros((len(records), len(records)))
    for kind in kinds:
        if kind in SET_KINDS:  # hash sets: nothing to centre
            sims = pairwise_similarity(kind, [v[kind] for v in vectors], None)
        else:
            raw = np.stack([v[kind] for v in vectors]).astype(np.float64)
            stack = raw - raw.mean(axis=0) if center and len(records) >= MIN_SELF_CENTRE else raw
            sims = pairwise_similarity(kind, stack, raw)
        total += np.clip(1.0 - np.nan_to_num(sims, nan=1.0), 0.0, 2.0)
    return total / len(kinds)


def relation_distances(records: list[DNARecord], calibration: dict) -> np.ndarray:
    """1 - P(related) between records, from a reference's calibrated relation model (symmetrised)."""
    check_compatible(records)
    prob = np.nan_to_num(RelationModel.from_dict(calibration).all_pairs(records), nan=1.0)
    return 1.0 - (prob + prob.T) / 2.0


def build_tree(records: list[DNARecord], method: str = "upgma", center: bool = True,
               mean: np.ndarray | None = None, distance: str = "dna", calibration: dict | None = None) -> PhyloTree:
    """Tree over `records` (>= 2, all comparable) by `method` (`upgma` or `nj`).

    `distance`: ``dna`` (centred cosine of the DNAs, see `dna_distances`), ``evidence`` (`evidence_distances`) or
    ``relation`` (`relation_distances`, needs the reference's `calibration`).
    """
    if method not in METHODS:
        raise InvalidInputError(f"unknown tree method {method!r}: choose one of {', '.join(METHODS)}")
    if distance not in DISTANCES:
        raise InvalidInputError(f"unknown distance {distance!r}: choose one of {', '.join(DISTANCES)}")
    if len(records) < 2:
        raise InvalidInputError(f"a tree needs at least two DNA records, got {len(records)}")
    labels = record_labels(records)
    if distance == "relation":
        if not calibration:
            raise InvalidInputError("--distance relation needs a calibrated reference store (--reference)")
        distances = relation_distances(records, calibration)
    elif distance == "evidence":
        distances = evidence_distances(records, center=center)
    else:
        distances = dna_distances(records, center=center, mean=mean)
    if method == "upgma":
        root, link = upgma(distances, labels)
        return PhyloTree(root, labels, distances, method, link)
    return PhyloTree(neighbor_joining(distances, labels), labels, distances, method)


def _symmetric(distances: np.ndarray) -> np.ndarray:
    d = np.asarray(distances, dtype=np.float64)
    if d.ndim != 2 or d.shape[0] != d.shape[1]:
        raise InvalidInputError(f"distance matrix must be square, got shape {d.shape}")
    d = (d + d.T) / 2.0
    np.fill_diagonal(d, 0.0)
    return np.clip(d, 0.0, None)


# ---------------------------------------------------------------------------------------------- Newick

_PLAIN_LABEL = re.compile(r"^[A-Za-z0-9_.\-/@#+]+$")


def quote_label(label: str) -> str:
    """A Newick label: bare when it only has safe characters, else single-quoted with '' for a quote."""
    if _PLAIN_LABEL.match(label):
        return label
    return "'" + label.replace("'", "''") + "'"


def _newick(root: Node) -> str:
    """Iterative writer (deep trees never hit the recursion limit)."""
    out: list[str] = []
    stack: list[tuple[Node | str, bool]] = [(root, True)]
    while stack:
        item, is_root = stack.pop()
        if isinstance(item, str):
            out.append(item)
            continue
        suffix = "" if is_root else f":{item.length:.6g}"
        if item.is_leaf:
            out.append(quote_label(item.name or "") + suffix)
            continue
        out.append("(")
        stack.append((")" + (quote_label(item.name) if item.name else "") + suffix, False))
        for k, child in enumerate(reversed(item.children)):
            stack.append((child, False))
            if k < len(item.children) - 1:
                stack.append((",", False))
    return "".join(out)


_TOKEN = re.compile(r"\s*('(?:[^']|'')*'|[(),:;]|[^\s(),:;']+)")


def parse_newick(text: str) -> Node:
    """Parse Newick text (quoted labels, branch lengths, internal labels) into `Node`s."""
    tokens = [m.group(1) for m in _TOKEN.finditer(text.strip())]
    if not tokens or tokens[-1] != ";":
        raise InvalidInputError("Newick text must end with ';'")
    stack: list[Node] = []
    current = Node()
    pos = 0
    while pos < len(tokens) - 1:
        tok = tokens[pos]
        if tok == "(":
            child = Node()
            current.children.append(child)
            stack.append(current)
            current = child
        elif tok == ",":
            if not stack:
                raise InvalidInputError("malformed Newick: ',' outside parentheses")
            sibling = Node()
            stack[-1].children.append(sibling)
            current = sibling
        elif tok == ")":
            if not stack:
                raise InvalidInputError("malformed Newick: unbalanced ')'")
            current = stack.pop()
        elif tok == ":":
            pos += 1
            try:
                current.length = float(tokens[pos])
            except (IndexError, ValueError):
                raise InvalidInputError("malformed Newick: bad branch length") from None
        else:
            current.name = tok[1:-1].replace("''", "'") if tok.startswith("'") else tok
        pos += 1
    if stack:
        raise InvalidInputError("malformed Newick: unbalanced '('")
    return current
