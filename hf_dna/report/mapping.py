"""2-D maps of DNAs: classical (Torgerson) multidimensional scaling of a distance matrix, in numpy."""
from __future__ import annotations

import numpy as np


def classical_mds(distances: np.ndarray, dims: int = 2) -> np.ndarray:
    """Coordinates (n x dims) whose Euclidean distances best match `distances` (classical MDS).

    Double-centres the squared distances and keeps the top eigenvectors; dimensions with non-positive
    eigenvalues (a non-Euclidean input, or fewer points than dims) come out as zeros. Signs are fixed so the
    largest-magnitude coordinate of each axis is positive (deterministic output).
    """
    d = np.asarray(distances, dtype=np.float64)
    n = d.shape[0]
    if n == 0:
        return np.zeros((0, dims))
    centring = np.eye(n) - np.full((n, n), 1.0 / n)
    gram = -0.5 * centring @ (d**2) @ centring
    values, vectors = np.linalg.eigh((gram + gram.T) / 2.0)
    order = np.argsort(values)[::-1][:dims]
    coords = np.zeros((n, dims))
    for k, idx in enumerate(order):
        if values[idx] > 1e-12:
            axis = vectors[:, idx] * np.sqrt(values[idx])
            coords[:, k] = axis if axis[np.argmax(np.abs(axis))] >= 0 else -axis
    return coords


def stress(distances: np.ndarray, coords: np.ndarray) -> float:
    """Kruskal stress-1 of a map (0 = distances reproduced exactly; above ~0.2 the map is a rough sketch)."""
    from scipy.spatial.distance import pdist, squareform

    d = squareform(np.asarray(distances, dtype=np.float64), checks=False)
    if d.size == 0:
        return 0.0
    mapped = pdist(np.asarray(coords, dtype=np.float64))
    denom = float(np.sum(d**2))
    return float(np.sqrt(np.sum((d - mapped) ** 2) / denom)) if denom > 0 else 0.0
