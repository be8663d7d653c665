"""Extra per-record evidence beside the paper's 128-d DNA: compact vectors stored in `DNARecord.evidence`.

Every vector here is a *sketch*: a seeded linear map of a per-probe representation, concatenated in probe
order and scaled by 1/sqrt(n_probes), so the dot product of two sketches estimates the average per-probe
cosine similarity of the two models' responses. Because the maps are linear, centring on a reference mean
(what `hf_dna.evidence.relation.RelationModel` does) commutes with them.

- ``lex``: lexical/formatting evidence. Each response (its first `LEX_MAX_CHARS` characters) becomes a vector
  of hashed character n-gram counts (n = 3..5, sublinear tf, L2-normalised per probe), count-sketched into
  `LEX_DIM` dims. Hashing chains splitmix64 over Unicode code points, so it is the same on every platform.
- ``emb<k>``: the same response embeddings as the DNA, projected to a larger working dim `k`
  (blockwise Gaussian JL of `hf_dna.pipeline.dna`, seed offset so it is independent of the 128-d DNA).
- ``probe<k>``: the same embeddings kept *per probe*, each JL-projected to `k` dims and stored as int8 with one
  scale per probe (`pack_probe_sketch`). Not a single vector: `hf_dna.evidence.relation` compares two models probe by
  probe (a vote of nearest neighbours per probe), which a concatenation cannot do.
- ``lexprobe<k>``: the lexical tf vectors kept per probe in the same way (count-sketched to `k` dims each).
- ``phrases``: not a vector but a set: 32-bit hashes of the word `PHRASE_WORDS`-grams of each response (its first
  `PHRASE_MAX_TOKENS` words; CJK characters count as words), keyed by the probe, of which a fixed half of the
  hash space is kept (`PHRASE_KEEP_BITS`). Relatives share rare exact phrases that unrelated models do not;
  `hf_dna.evidence.relation` weighs each shared phrase by how rare it is in the reference.

Values are scaled to unit mean square (the evidence is only ever compared by cosine after centring, which
scale does not change) and rounded to 1 decimal to keep records small (~6 bytes of JSON per value).
"""
from __future__ import annotations

import base64
import hashlib
import re
import zlib

import numpy as np

from ..pipeline.dna import project, projection_blocks

LEX_DIM = 512
#: characters of each response the lexical sketch reads: about what the sentence encoder reads (256 word pieces),
#: so references generated with long outputs and audited models generated with short ones are compared alike
LEX_MAX_CHARS = 1000
LEX_NGRAMS = (3, 4, 5)
LEX_BUCKETS = 1 << 20
WIDE_DIM = 1024
PROBE_DIM = 64
#: words per phrase, words of each response read, and how much of the hash space is kept (1: half): measured on
#: the paper600 and chat references (bench/RESULTS.md, "Shared rare phrases")
PHRASE_WORDS, PHRASE_MAX_TOKENS, PHRASE_KEEP_BITS = 4, 256, 1
PHRASES_FORMAT = "phrase-hashes-v1"
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af"
_WORDS = re.compile(f"[{_CJK}]|[^\\W{_CJK}]+|[^\\w\\s]")
#: evidence vector names and what they hold (for reports and `RelationModel.explain`)
EVIDENCE_KINDS = {
    "lex": f"hashed char {LEX_NGRAMS[0]}-{LEX_NGRAMS[-1]}-gram tf per probe, count-sketched to {LEX_DIM}",
    f"emb{WIDE_DIM}": f"response embeddings, JL-projected to {WIDE_DIM} dims",
    f"probe{PROBE_DIM}": f"response embeddings per probe, each JL-projected to {PROBE_DIM} dims (int8)",
    f"lexprobe{PROBE_DIM}": f"hashed char n-gram tf per probe, each count-sketched to {PROBE_DIM} dims (int8)",
    "phrases": f"hashes of the word {PHRASE_WORDS}-grams of each response, keyed by probe (a fixed half kept)",
}
_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser: a well-spread 64-bit hash of each uint64 (wraps modulo 2**64)."""
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return (x ^ (x >> np.uint64(31))) & _MASK64


def ngram_hashes(text: str, sizes: tuple[int, ...] = LEX_NGRAMS) -> np.ndarray:
    """64-bit hashes of every character n-gram of `text` (lower-cased, whitespace collapsed)."""
    norm = " ".join(text.lower().split())
    codes = np.frombuffer(norm.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    out = []
    with np.errstate(over="ignore"):
        for n in sizes:
            if len(codes) < n:
                continue
            h = np.full(len(codes) - n + 1, np.uint64(n), dtype=np.uint64)
            for k in range(n):
                h = _mix(h ^ codes[k : len(codes) - n + 1 + k])
            out.append(h)
    return np.concatenate(out) if out else np.zeros(0, dtype=np.uint64)


def _hashed_tf(text: str, probe: int, seed: int, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """Count-sketch (index, signed value) pairs of one response's normalised hashed n-gram tf (empty: none)."""
    hashes = ngram_hashes((text or "")[:LEX_MAX_CHARS])
    if hashes.size == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    buckets, counts = np.unique(hashes % np.uint64(LEX_BUCKETS), return_counts=True)
    values = 1.0 + np.log(counts.astype(np.float64))
    values /= np.linalg.norm(values)
    with np.errstate(over="ignore"):
        key = _mix(buckets ^ _mix(np.uint64(probe) + (np.uint64(seed & 0xFFFFFFFF) << np.uint64(32))))
    sign = np.where((key >> np.uint64(63)) == 1, -1.0, 1.0)
    return (key % np.uint64(dim)).astype(np.int64), sign * values


def lexical_sketch(texts: list[str], seed: int, dim: int = LEX_DIM) -> np.ndarray:
    """Count sketch (float32, `dim`) of the per-probe-normalised hashed n-gram tf vectors of `texts`."""
    out = np.zeros(dim, dtype=np.float64)
    for probe, text in enumerate(texts):
        np.add.at(out, *_hashed_tf(text, probe, seed, dim))
    return (out / np.sqrt(max(len(texts), 1))).astype(np.float32)


def lexical_probe_sketch(texts: list[str], seed: int, dim: int = PROBE_DIM) -> np.ndarray:
    """(n_probes, dim) float32: each response's hashed n-gram tf count-sketched on its own (zero when empty)."""
    out = np.zeros((len(texts), dim), dtype=np.float64)
    for probe, text in enumerate(texts):
        np.add.at(out[probe], *_hashed_tf(text, probe, seed, dim))
    return out.astype(np.float32)


def wide_embedding(embeddings: np.ndarray, seed: int, dim: int = WIDE_DIM) -> np.ndarray:
    """The response embeddings JL-projected to a wider working dim, scaled like the lexical sketch."""
    emb = np.asarray(embeddings, dtype=np.float32)
    return project(emb, dim=dim, seed=seed + 1) / np.float32(np.sqrt(max(len(emb), 1)))


def probe_sketch(embeddings: np.ndarray, seed: int, dim: int = PROBE_DIM,
                 answered: list[bool] | None = None) -> np.ndarray:
    """(n_probes, dim) float32: each probe's embedding through its own seeded Gaussian block (`hf_dna.pipeline.dna`);
    all zero for probes not `answered` (empty responses), which the comparison then leaves out."""
    emb = np.asarray(embeddings, dtype=np.float32)
    out = np.stack([emb[p] @ block for p, block in enumerate(projection_blocks(seed + 2, len(emb), emb.shape[1], dim))])
    if answered is not None:
        out[~np.asarray(answered, dtype=bool)] = 0.0
    return out


def pack_probe_sketch(sketch: np.ndarray) -> dict[str, object]:
    """JSON-able int8 form of a probe sketch: one scale per probe, values base64 (~1 byte per value)."""
    x = np.asarray(sketch, dtype=np.float64)
    scale = np.abs(x).max(axis=1) / 127.0
    scale = np.array([float(f"{v:.5g}") for v in scale])
    q = np.rint(x / np.where(scale == 0, 1.0, scale)[:, None]).clip(-127, 127).astype(np.int8)
    return {"shape": list(q.shape), "scale": scale.tolist(), "int8": base64.b64encode(q.tobytes()).decode("ascii")}


def unpack_probe_sketch(value: object) -> np.ndarray | None:
    """The (n_probes, dim) float32 sketch of `pack_probe_sketch`'s output; None when `value` is not one."""
    try:
        rows, cols = (int(v) for v in value["shape"])  # type: ignore[index]
        q = np.frombuffer(base64.b64decode(value["int8"], validate=True), dtype=np.int8)  # type: ignore[index]
        scale = np.asarray(value["scale"], dtype=np.float32)  # type: ignore[index]
        if q.size != rows * cols or scale.shape != (rows,):
            return None
    except (TypeError, KeyError, ValueError):
        return None
    return q.reshape(rows, cols).astype(np.float32) * scale[:, None]


def _word_hash(word: str) -> int:
    return int.from_bytes(hashlib.blake2b(word.encode("utf-8"), digest_size=8).digest(), "little")


def phrase_hashes(texts: list[str], words: int = PHRASE_WORDS) -> np.ndarray:
    """Sorted unique uint32 hashes of the word `words`-grams of each response (lower-cased, its first
    `PHRASE_MAX_TOKENS` words), keyed by the probe's position; only hashes in the kept share of the space."""
    cache: dict[str, int] = {}
    out = []
    with np.errstate(over="ignore"):
        for probe, text in enumerate(texts):
            tokens = _WORDS.findall((text or "").lower())[:PHRASE_MAX_TOKENS]
            if len(tokens) < words:
                continue
            codes = np.array([cache.setdefault(t, _word_hash(t)) for t in tokens], dtype=np.uint64)
            h = np.full(len(codes) - words + 1, _mix(np.uint64(probe) + np.uint64(0x9E3779B97F4A7C15)), dtype=np.uint64)
            for k in range(words):
                h = _mix(h ^ codes[k : len(codes) - words + 1 + k])
            out.append(h[(h >> np.uint64(64 - PHRASE_KEEP_BITS)) == 0])
    if not out:
        return np.zeros(0, dtype=np.uint32)
    return np.unique((np.concatenate(out) & np.uint64(0xFFFFFFFF)).astype(np.uint32))


def pack_phrases(hashes: np.ndarray) -> dict[str, object]:
    """JSON-able form of `phrase_hashes`: the sorted hashes' gaps, zlib-compressed, base64 (~3 bytes a hash)."""
    h = np.asarray(hashes, dtype=np.uint32)
    gaps = np.diff(h, prepend=np.uint32(0)).astype("<u4")
    return {"format": PHRASES_FORMAT, "count": int(h.size),
            "gaps": base64.b64encode(zlib.compress(gaps.tobytes(), 9)).decode("ascii")}


def unpack_phrases(value: object) -> np.ndarray | None:
    """The uint32 hashes of `pack_phrases`'s output; None when `value` is not one."""
    try:
        if value.get("format") != PHRASES_FORMAT:  # type: ignore[union-attr]
            return None
        gaps = np.frombuffer(zlib.decompress(base64.b64decode(value["gaps"], validate=True)), dtype="<u4")  # type: ignore[index]
        if gaps.size != int(value["count"]):  # type: ignore[index]
            return None
    except (AttributeError, TypeError, KeyError, ValueError, zlib.error):
        return None
    return np.cumsum(gaps, dtype=np.uint64).astype(np.uint32)


def _compact(vector: np.ndarray) -> list[float]:
    """Scaled to unit mean square (cosines do not change) and rounded to 1 decimal: short JSON; the rounding
    moves a cosine between two such vectors by ~0.001."""
    v = np.asarray(vector, dtype=np.float64) * np.sqrt(len(vector))
    return [round(float(x), 1) for x in v]


def record_evidence(texts: list[str], embeddings: np.ndarray, seed: int) -> dict[str, object]:
    """The evidence vectors a DNA record carries (see module doc); deterministic for given inputs and seed."""
    if len(texts) != len(embeddings):
        raise ValueError(f"{len(texts)} texts but {len(embeddings)} embeddings")
    return {
        "lex": _compact(lexical_sketch(texts, seed)),
        f"emb{WIDE_DIM}": _compact(wide_embedding(embeddings, seed)),
        f"probe{PROBE_DIM}": pack_probe_sketch(
            probe_sketch(embeddings, seed, answered=[bool((t or "").strip()) for t in texts])),
        f"lexprobe{PROBE_DIM}": pack_probe_sketch(lexical_probe_sketch(texts, seed)),
        "phrases": pack_phrases(phrase_hashes(texts)),
    }
