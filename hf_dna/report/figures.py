"""Matplotlib figures for reports (Agg backend, PNG bytes): DNA map, distance heatmap, phylogenetic tree."""
from __future__ import annotations

import io

import numpy as np

from ..errors import HfDnaError
from .tree import Node, PhyloTree

#: how many families get their own colour; the rest are drawn grey as "other"
MAX_COLOURED_FAMILIES = 20
OTHER = "other"
UNKNOWN = "unknown"


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise HfDnaError("figures need matplotlib: pip install matplotlib") from None

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def family_colours(families: list[str]) -> dict[str, tuple]:
    """A colour per family, most frequent first (tab20), grey for rare / unknown ones."""
    plt = _pyplot()
    counts: dict[str, int] = {}
    for fam in families:
        if fam and fam != UNKNOWN:
            counts[fam] = counts.get(fam, 0) + 1
    greys = {7, 15}  # tab10 / tab20 greys are kept for "other" and "unknown"
    palette = [c for i, c in enumerate(plt.get_cmap("tab10").colors) if i not in greys]
    palette += [c for i, c in enumerate(plt.get_cmap("tab20").colors) if i % 2 and i not in greys]
    ranked = sorted(counts, key=lambda f: (-counts[f], f))[:min(MAX_COLOURED_FAMILIES, len(palette))]
    colours = {fam: (*palette[i][:3], 1.0) for i, fam in enumerate(ranked)}
    colours[OTHER] = (0.6, 0.6, 0.6, 1.0)
    colours[UNKNOWN] = (0.8, 0.8, 0.8, 1.0)
    return colours


def colour_of(family: str, colours: dict[str, tuple]) -> tuple:
    return colours.get(family or UNKNOWN, colours[OTHER])


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=fig.dpi, bbox_inches="tight")
    _pyplot().close(fig)
    return buf.getvalue()


def map_png(coords: np.ndarray, labels: list[str], families: list[str], highlight: list[bool],
            title: str = "DNA map (classical MDS of centred cosine distances)") -> bytes:
    """Scatter plot of a 2-D map, coloured by family; highlighted points are larger and labelled."""
    plt = _pyplot()
    colours = family_colours(families)
    families = [f if f in colours else OTHER for f in families]
    fig, ax = plt.subplots(figsize=(11, 8), dpi=100)
    n_labelled = sum(highlight)
    size = 70 if n_labelled <= 100 else 34
    for i, (x, y) in enumerate(coords):
        big = highlight[i]
        ax.scatter(x, y, s=size if big else 22, color=colour_of(families[i], colours),
                   edgecolors="black" if big else "none", linewidths=0.8, alpha=1.0 if big else 0.75,
                   zorder=3 if big else 2)
        if big and n_labelled <= 60:
            ax.annotate(labels[i].split("/")[-1], (x, y), xytext=(4, 3), textcoords="offset points", fontsize=7)
        elif not big and len(labels) <= 40:
            ax.annotate(labels[i].split("/")[-1], (x, y), xytext=(3, -8), textcoords="offset points", fontsize=6,
                        color="#666")
    shown = [f for f in colours if f in set(families)] or [UNKNOWN]
    handles = [plt.Line2D([], [], marker="o", linestyle="", color=colours[f], label=f) for f in shown]
    ax.legend(handles=handles, title="family", fontsize=7, title_fontsize=8, loc="center left",
              bbox_to_anchor=(1.01, 0.5), frameon=False)
    ax.set_title(title, fontsize=11)
    ax.set_xlabel("MDS axis 1")
    ax.set_ylabel("MDS axis 2")
    ax.grid(alpha=0.25)
    return _png(fig)


def heatmap_png(distances: np.ndarray, labels: list[str], order: list[int] | None = None) -> bytes:
    """Distance heatmap (rows/columns in `order`, e.g. the tree's leaf order)."""
    plt = _pyplot()
    order = list(range(len(labels))) if order is None else order
    d = np.asarray(distances)[np.ix_(order, order)]
    names = [labels[i] for i in order]
    side = min(4 + 0.28 * len(names), 16)
    fig, ax = plt.subplots(figsize=(side + 1.5, side), dpi=100)
    image = ax.imshow(d, cmap="viridis_r", vmin=0.0)
    ax.set_xticks(range(len(names)), names, rotation=90, fontsize=7)
    ax.set_yticks(range(len(names)), names, fontsize=7)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="cosine distance (centred DNA)")
    ax.set_title("Pairwise DNA distances", fontsize=11)
    return _png(fig)


def tree_png(tree: PhyloTree, families: dict[str, str]) -> bytes:
    """Rectangular phylogram of `tree`: x is the distance from the root, leaf labels coloured by family."""
    plt = _pyplot()
    leaves = tree.root.leaves()
    colours = family_colours([families.get(label, "") for label in leaves])
    depth: dict[int, float] = {}
    ypos: dict[int, float] = {}
    nodes = list(tree.root.walk())
    for node in nodes:  # pre-order: parents before children
        for child in node.children:
            depth[id(child)] = depth.get(id(node), 0.0) + child.length
    depth[id(tree.root)] = 0.0
    leaf_index = 0
    for node in reversed(nodes):  # children before parents
        if node.is_leaf:
            ypos[id(node)] = len(leaves) - 1 - leaf_index
            leaf_index += 1
        else:
            ypos[id(node)] = float(np.mean([ypos[id(c)] for c in node.children]))
    leaf_index = 0
    height = max(3.0, 0.16 * len(leaves) + 1.0)
    fig, ax = plt.subplots(figsize=(11, height), dpi=90)
    max_depth = max(depth.values()) or 1.0
    for node in nodes:
        x, y = depth[id(node)], ypos[id(node)]
        if node.children:
            ys = [ypos[id(c)] for c in node.children]
            ax.plot([x, x], [min(ys), max(ys)], color="#444", linewidth=0.8)
            for child in node.children:
                ax.plot([x, depth[id(child)]], [ypos[id(child)]] * 2, color="#444", linewidth=0.8)
        else:
            fam = families.get(node.name or "", "")
            ax.text(x + max_depth * 0.015, y, f"{node.name}" + (f"  [{fam}]" if fam else ""), va="center",
                    fontsize=7, color="#222")
            ax.plot([x], [y], marker="s", markersize=5, color=colour_of(fam, colours), markeredgewidth=0)
    ax.set_xlim(-max_depth * 0.02, max_depth * 1.6)
    ax.set_ylim(-1, len(leaves))
    ax.set_yticks([])
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)
    ax.set_xlabel("distance from root")
    ax.set_title(f"Phylogenetic tree ({tree.method.upper()}, {len(leaves)} models)", fontsize=11)
    return _png(fig)


def leaf_order(root: Node, labels: list[str]) -> list[int]:
    """Indices of `labels` in the tree's left-to-right leaf order."""
    index = {label: i for i, label in enumerate(labels)}
    return [index[name] for name in root.leaves() if name in index]
