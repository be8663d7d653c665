"""RepTrace DNA: per-probe response embeddings, concatenated in probe order, reduced by a seeded Gaussian
random projection (Johnson-Lindenstrauss) to `dim` dimensions.

The projection matrix R (n_probes*d x dim, entries N(0, 1/dim)) is never held whole: its rows for probe p are
generated on demand from ``PCG64(SeedSequence([seed, p]))``, so the DNA is a sum of per-probe contributions
``e_p @ R_p``. That makes it (a) cheap in memory for any number of probes, (b) bit-reproducible across
platforms (numpy's PCG64 and float32 normals are platform-independent), (c) linear: the DNA of the reference
mean is the mean of DNAs, so per-probe centring can be done on DNAs alone.
"""
from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache

import numpy as np

from .device import core_threads

#: name of the projection scheme, stored in every record and checked by compare
PROJECTION = "reptrace-gaussian-blockwise-v1"
DEFAULT_DIM = 128
DEFAULT_SEED = 42


def projection_block(seed: int, probe: int, rows: int, dim: int) -> np.ndarray:
    """Rows of the projection matrix belonging to probe `probe` (shape rows x dim, float32, N(0, 1/dim)).
    Blocks of at most `CACHED_DIM` columns are kept for reuse (~120 MB at d=384, dim=128: one paper600 DNA);
    wider ones (the 1024-d working sketch: 1.5 MB a probe) are made on each use rather than held."""
    return _cached_block(seed, probe, rows, dim) if dim <= CACHED_DIM else _block(seed, probe, rows, dim)


CACHED_DIM = 128


@lru_cache(maxsize=640)
def _cached_block(seed: int, probe: int, rows: int, dim: int) -> np.ndarray:
    return _block(seed, probe, rows, dim)


def projection_blocks(seed: int, n_probes: int, rows: int, dim: int) -> Iterator[np.ndarray]:
    """`projection_block` of probes 0..n_probes-1, in order, drawn by one thread per core (numpy's generator
    releases the GIL: 1.9x on 2 cores for the 1024-d blocks), a few blocks ahead of the caller."""
    threads = min(core_threads(), n_probes)
    if threads <= 1:
        yield from (projection_block(seed, p, rows, dim) for p in range(n_probes))
        return
    with ThreadPoolExecutor(threads, thread_name_prefix="hf-dna-projection") as pool:
        ahead: deque = deque()
        for p in range(n_probes):
            ahead.append(pool.submit(projection_block, seed, p, rows, dim))
            if len(ahead) > 2 * threads:
                yield ahead.popleft().result()
        while ahead:
            yield ahead.popleft().result()


def _block(seed: int, probe: int, rows: int, dim: int) -> np.ndarray:
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, probe])))
    block = rng.standard_normal((rows, dim), dtype=np.float32)
    block *= np.float32(1.0 / np.sqrt(dim))
    block.setflags(write=False)
    return block


def project(embeddings: np.ndarray, dim: int = DEFAULT_DIM, seed: int = DEFAULT_SEED) -> np.ndarray:
    """Project probe embeddings to DNA.

    `embeddings` has shape (n_probes, d) for one model or (n_models, n_probes, d) for many; returns float32
    (dim,) or (n_models, dim). Accumulates in float64 so the result does not depend on BLAS blocking.
    """
    emb = np.asarray(embeddings, dtype=np.float32)
    single = emb.ndim == 2
    if single:
        emb = emb[None]
    if emb.ndim != 3:
        raise ValueError(f"embeddings must be (n_probes, d) or (n_models, n_probes, d), got {emb.shape}")
    n_models, n_probes, d = emb.shape
    out = np.zeros((n_models, dim), dtype=np.float64)
    for p, block in enumerate(projection_blocks(seed, n_probes, d, dim)):
        out += emb[:, p, :].astype(np.float64) @ block.astype(np.float64)
    out = out.astype(np.float32)
    return out[0] if single else out


def cosine_distance_matrix(vectors: np.ndarray) -> np.ndarray:
    """Pairwise cosine distances (1 - cos) of the rows of `vectors`."""
    v = np.asarray(vectors, dtype=np.float64)
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    unit = v / np.where(norms == 0, 1, norms)
    return np.clip(1.0 - unit @ unit.T, 0.0, 2.0)


def euclidean_distance_matrix(vectors: np.ndarray) -> np.ndarray:
    """Pairwise Euclidean distances of the rows of `vectors`."""
    from scipy.spatial.distance import cdist

    v = np.asarray(vectors, dtype=np.float64)
    return cdist(v, v)
