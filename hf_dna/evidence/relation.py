"""A calibrated probability that two models are related, learned on a reference's labelled pairs.

The stored representation stays the paper's DNA; the decision combines it with the evidence vectors of
`hf_dna.evidence.sketches` when both sides carry them. For each vector kind (``dna``, ``dna_white``, ``lex``,
``emb1024``) the similarity is the cosine after centring on the reference mean (per-probe centring, by
linearity of the projections); ``dna_white`` also whitens by the within-family covariance of the labelled
families. Each similarity s(q, r) of a query q to a reference record r gives five pair features:

- ``cos``: s itself;
- ``z``: s standardised over the query's similarities to all records (removes the query's own offset:
  base models, for instance, look alike to everything);
- ``zr``: s standardised over r's similarities to the other records (the same on r's side: hubness);
- ``rq``: log(1 + rank of r among q's candidates); ``rr``: log(1 + rank of q among r's neighbours).

``probe64`` and ``lexprobe64`` (per-probe sketches) are not compared by one cosine: for each probe, q and r cast
a vote for each other when the other is among their nearest `VOTE_SHARE` of the reference on that probe
(per-probe centred cosine); s(q, r) is the share of votes over the probes both answered. A vote counts agreement
on many probes rather than the average similarity, which style (base vs chat, length) dominates; it is the
single best evidence measured (bench/RESULTS.md).

``phrases`` (a set of hashed word 4-grams per probe) is compared by an IDF-weighted cosine: only phrases that 2 to
`PHRASE_SHARE` of the models compared share count, each weighted by log(n / models sharing it), so a rare exact
phrase two models both produce weighs most (family AUC 0.70 -> 0.74 on paper600 alone; bench/RESULTS.md).

A logistic regression on these features (L2, fitted on all labelled pairs: same `family` = related) turns
them into P(related). Its quality is measured by grouped cross-validation with whole families held out of
fitting, and stored with the model; no threshold is set by hand.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import ReferenceStoreError
from ..pipeline.record import DNARecord
from .lineage import labelled_family, read_lineage
from .metrics import auc, pair_metrics
from .sketches import unpack_phrases, unpack_probe_sketch

FORMAT = "hf-dna-relation-model-v1"
EVIDENCE_ORDER = ("dna", "dna_white", "lex", "emb1024", "probe64", "lexprobe64", "phrases")
#: what a fitted model uses by default: whitening (``dna_white``) is measured in bench/method_eval.py but left
#: out, since on held-out families it adds false confident matches (bench/RESULTS.md)
DEFAULT_KINDS = ("dna", "lex", "emb1024", "probe64", "lexprobe64", "phrases")
#: kinds held per probe and compared by per-probe votes (see module doc)
VOTE_KINDS = ("probe64", "lexprobe64")
#: a probe's vote goes to the nearest this share of the reference (10 of 252 records in the paper600 store)
VOTE_SHARE = 0.04
#: kinds held as a set of hashes per record (not a vector) and compared by `phrase_similarity`
SET_KINDS = ("phrases",)
#: a phrase shared by more than this share of the models compared is common wording, not evidence (20 of 254)
PHRASE_SHARE = 0.08
FALLBACK_KINDS = ("dna",)
FEATURE_PARTS = ("cos", "z", "zr", "rq", "rr")
#: most reference columns used for record-side statistics (ranks are rescaled beyond it)
STATS_SAMPLE = 2000
CV_FOLDS = 5
L2 = 1e-2
WHITEN_SHRINK = 0.1


# ---------------------------------------------------------------- vectors and pair features

def record_vectors(record: DNARecord) -> dict[str, np.ndarray]:
    """The named vectors a record offers: ``dna`` plus each evidence vector."""
    return {"dna": record.vector.astype(np.float64), **evidence_vectors(record.evidence or {})}


def evidence_vectors(evidence: dict[str, Any]) -> dict[str, np.ndarray]:
    """The numeric evidence of a record's ``evidence`` dict: vectors as arrays, per-probe sketches unpacked."""
    vectors = {}
    for name, values in evidence.items():
        if isinstance(values, list) and values and all(isinstance(v, (int, float)) for v in values[:4]):
            vectors[name] = np.asarray(values, dtype=np.float64)
        elif isinstance(values, dict) and (sketch := unpack_probe_sketch(values)) is not None:
            vectors[name] = sketch
        elif isinstance(values, dict) and (hashes := unpack_phrases(values)) is not None:
            vectors[name] = hashes
    return vectors


def _unit(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.where(norms == 0, 1.0, norms)


def whitener(vectors: np.ndarray, families: np.ndarray, shrink: float = WHITEN_SHRINK) -> np.ndarray:
    """W = (S_w + shrink * mean-eigenvalue * I)^(-1/2), S_w the within-family covariance of `vectors`."""
    centred = np.asarray(vectors, dtype=np.float64).copy()
    for fam in np.unique(families):
        rows = families == fam
        centred[rows] -= centred[rows].mean(axis=0)
    cov = centred.T @ centred / max(len(centred) - len(np.unique(families)), 1)
    cov += shrink * np.trace(cov) / len(cov) * np.eye(len(cov))
    vals, vecs = np.linalg.eigh(cov)
    return (vecs / np.sqrt(vals)) @ vecs.T


def cosine_block(queries: np.ndarray, refs: np.ndarray) -> np.ndarray:
    """Cosine similarities (n_queries, n_refs)."""
    return _unit(queries) @ _unit(refs).T


def _probe_units(vectors: np.ndarray, answered: np.ndarray) -> np.ndarray:
    """(n, p, k) per-probe vectors -> (p, n, k) float32, unit length per probe, zero where not `answered`."""
    units = _unit(np.transpose(np.asarray(vectors, dtype=np.float32), (1, 0, 2)))
    return units * answered.T[:, :, None]


def answered_probes(raw: np.ndarray) -> np.ndarray:
    """(n, p) True where a model answered the probe: a per-probe sketch is all zero for an empty response."""
    return np.any(np.asarray(raw) != 0, axis=-1)


def vote_thresholds(rows: np.ndarray, cols: np.ndarray, cols_answered: np.ndarray,
                    own_col: np.ndarray | None = None) -> np.ndarray:
    """(p, n_rows): per probe, the similarity a column needs to be among a row's nearest `VOTE_SHARE` of the
    columns that answered it. `rows`, `cols` from `_probe_units`; `cols_answered` (p, n_cols); `own_col[i]` is
    row i's own column (skipped; -1 for none)."""
    n_rows, n_cols = rows.shape[1], cols.shape[1]
    own = np.full(n_rows, -1) if own_col is None else np.asarray(own_col)
    hit = np.flatnonzero(own >= 0)
    out = np.empty((rows.shape[0], n_rows), dtype=np.float32)
    for j in range(rows.shape[0]):
        s = rows[j] @ cols[j].T
        s[:, ~cols_answered[j]] = -np.inf
        s[hit, own[hit]] = -np.inf
        k = max(1, int(round(VOTE_SHARE * max(int(cols_answered[j].sum()) - int(len(hit) > 0), 1))))
        out[j] = np.partition(s, n_cols - k, axis=1)[:, n_cols - k]
    return out


def vote_similarity(queries: np.ndarray, refs: np.ndarray, q_thresholds: np.ndarray, r_thresholds: np.ndarray,
                    q_answered: np.ndarray, r_answered: np.ndarray) -> np.ndarray:
    """(n_q, n_r) share of per-probe votes among the probes both answered: q votes for r on a probe when r clears
    q's threshold, and back (0 between models that share no answered probe)."""
    votes = np.zeros((queries.shape[1], refs.shape[1]), dtype=np.float32)
    both = np.zeros_like(votes)
    for j in range(queries.shape[0]):
        s = queries[j] @ refs[j].T
        mask = q_answered[j][:, None] & r_answered[j][None, :]
        votes += mask & (s >= q_thresholds[j][:, None])
        votes += mask & (s >= r_thresholds[j][None, :])
        both += mask
    return np.where(both > 0, votes / np.maximum(2 * both, 1), 0.0).astype(np.float64)


def vote_matrix(vectors: np.ndarray, answered: np.ndarray | None = None) -> np.ndarray:
    """All-pairs vote similarity of (n, p, k) per-probe vectors (symmetric; NaN diagonal)."""
    answered = answered_probes(vectors) if answered is None else answered
    units = _probe_units(vectors, answered)
    thresholds = vote_thresholds(units, units, answered.T, np.arange(units.shape[1]))
    out = vote_similarity(units, units, thresholds, thresholds, answered.T, answered.T)
    np.fill_diagonal(out, np.nan)
    return out


def phrase_similarity(sets: list[np.ndarray]) -> np.ndarray:
    """All-pairs IDF-weighted cosine of phrase-hash `sets` (NaN diagonal) over the phrases that at most
    `PHRASE_SHARE` of the sets hold, each weighted by log(n / sets holding it)."""
    from scipy import sparse

    n = len(sets)
    hashes = np.concatenate([np.asarray(s, dtype=np.uint32) for s in sets]) if n else np.zeros(0, np.uint32)
    rows = np.repeat(np.arange(n), [len(s) for s in sets])
    _, column, held = np.unique(hashes, return_inverse=True, return_counts=True)
    idf = np.log(n / held)  # per distinct phrase
    rare = held[column] <= max(2, int(PHRASE_SHARE * n))
    counted = rare & (held[column] >= 2)
    x = sparse.csr_matrix((idf[column[counted]], (rows[counted], column[counted])), shape=(n, len(held)))
    out = (x @ x.T).toarray()
    # the norm counts a set's own rare phrases too: one accidental match between two sets that share nothing
    # else is not a cosine of 1
    norms = np.sqrt(np.bincount(rows[rare], weights=idf[column[rare]] ** 2, minlength=n))
    norms[norms == 0] = 1.0
    out /= norms[:, None] * norms[None, :]
    np.fill_diagonal(out, np.nan)
    return out


def pairwise_similarity(kind: str, vectors: Any, raw: Any) -> np.ndarray:
    """All-pairs similarity of one evidence kind's (centred) `vectors` (NaN diagonal): per-probe votes for
    `VOTE_KINDS` (which probes each model answered is read from the `raw` sketches), `phrase_similarity` for
    `SET_KINDS`, else cosine."""
    if kind in SET_KINDS:
        return phrase_similarity(list(vectors))
    if kind in VOTE_KINDS:
        return vote_matrix(vectors, answered_probes(raw))
    out = cosine_block(vectors, vectors)
    np.fill_diagonal(out, np.nan)
    return out


@dataclass
class RefStats:
    """Record-side statistics of one similarity kind: each record's similarities to the other records."""

    mean: np.ndarray  # (n_r,)
    sd: np.ndarray  # (n_r,)
    sorted: np.ndarray  # (n_r, m) ascending, NaN (self) last
    scale: float  # ranks are counted among m columns and scaled to the n_r - 1 other records

    @classmethod
    def from_block(cls, block: np.ndarray, n_records: int) -> RefStats:
        """`block` (n_r, m): similarities of each record to m reference columns, NaN where a record meets itself."""
        sd = np.nanstd(block, axis=1)
        valid = max(block.shape[1] - 1, 1)
        return cls(np.nanmean(block, axis=1), np.where(sd == 0, 1.0, sd), np.sort(block, axis=1),
                   max(n_records - 1, 1) / valid)

    def rank_of(self, sims: np.ndarray) -> np.ndarray:
        """For sims (n_q, n_r): how many of record r's other neighbours are closer to r than the query is."""
        out = np.empty(sims.shape)
        finite = np.isfinite(self.sorted).sum(axis=1)
        for r in range(sims.shape[1]):
            row = self.sorted[r, : finite[r]]
            out[:, r] = len(row) - np.searchsorted(row, sims[:, r], side="right")
        return out * self.scale


def _ranks(sims: np.ndarray) -> np.ndarray:
    """0-based rank of each column within its row (highest similarity first; NaN last)."""
    order = np.argsort(-np.nan_to_num(sims, nan=-np.inf), axis=1, kind="stable")
    ranks = np.empty_like(order)
    ranks[np.arange(len(sims))[:, None], order] = np.arange(sims.shape[1])[None, :]
    return ranks


def pair_features(sims: dict[str, np.ndarray], stats: dict[str, RefStats], kinds: tuple[str, ...]) -> np.ndarray:
    """(n_q, n_r, 5 * len(kinds)) features (see module doc); NaN similarities (a query meeting itself) stay NaN."""
    feats = []
    for kind in kinds:
        s, st = sims[kind], stats[kind]
        sd = np.nanstd(s, axis=1, keepdims=True)
        z = (s - np.nanmean(s, axis=1, keepdims=True)) / np.where(sd == 0, 1.0, sd)
        zr = (s - st.mean[None, :]) / st.sd[None, :]
        feats += [s, z, zr, np.log1p(_ranks(s)), np.log1p(st.rank_of(np.nan_to_num(s, nan=np.inf)))]
    return np.stack(feats, axis=-1)


def feature_names(kinds: tuple[str, ...]) -> list[str]:
    return [f"{kind}.{part}" for kind in kinds for part in FEATURE_PARTS]


# ---------------------------------------------------------------- logistic regression (no sklearn needed)

def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = L2) -> tuple[np.ndarray, float, np.ndarray, np.ndarray]:
    """L2 logistic regression on standardised features; returns (coef, intercept, mean, scale)."""
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale = np.where(scale == 0, 1.0, scale)
    xs = (x - mean) / scale
    xb = np.hstack([xs, np.ones((len(xs), 1))])

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        z = xb @ w
        nll = np.logaddexp(0, z) - y * z
        p = 1 / (1 + np.exp(-z))
        grad = xb.T @ (p - y) / len(y)
        reg = l2 * np.r_[w[:-1], 0.0]
        return nll.mean() + 0.5 * l2 * np.sum(w[:-1] ** 2), grad + reg

    from scipy.optimize import minimize  # only when fitting: scipy.optimize costs ~0.4 s of every CLI start-up

    w = minimize(loss, np.zeros(xb.shape[1]), jac=True, method="L-BFGS-B").x
    return w[:-1], float(w[-1]), mean, scale


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-np.clip(z, -50, 50)))


# ---------------------------------------------------------------- the model

@dataclass
class _Space:
    """Centring means and the DNA whitener: everything needed to turn vectors into centred similarities."""

    means: dict[str, np.ndarray]
    white: np.ndarray | None

    def transform(self, kind: str, vectors: Any) -> Any:
        if kind in SET_KINDS:  # sets of hashes: nothing to centre
            return vectors
        base = "dna" if kind == "dna_white" else kind
        centred = vectors - self.means[base]
        return centred @ self.white if kind == "dna_white" else centred


def _fit_space(vectors: dict[str, np.ndarray], families: np.ndarray, train: np.ndarray) -> _Space:
    means = {k: v.mean(axis=0) for k, v in vectors.items() if k not in SET_KINDS}
    rows = train & (families != "")
    white = whitener(vectors["dna"][rows] - means["dna"], families[rows]) if rows.sum() > 2 else None
    return _Space(means, white)


def _matrices(space: _Space, vectors: dict[str, np.ndarray], kinds: tuple[str, ...]) -> dict[str, np.ndarray]:
    """All-pairs similarity matrix per kind (NaN on the diagonal: a model is not its own candidate)."""
    out = {}
    for kind in kinds:
        base = "dna" if kind == "dna_white" else kind
        out[kind] = pairwise_similarity(kind, space.transform(kind, vectors[base]), vectors[base])
    return out


def _features_of_rows(matrices: dict[str, np.ndarray], rows: np.ndarray, kinds: tuple[str, ...]) -> np.ndarray:
    """Pair features of `rows` (as queries) against every record, record-side statistics over all records."""
    n = len(next(iter(matrices.values())))
    stats = {k: RefStats.from_block(matrices[k], n) for k in kinds}
    return pair_features({k: matrices[k][rows] for k in kinds}, stats, kinds)


def _train_pairs(feats: np.ndarray, families: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Features and labels of all pairs (i != j) of labelled rows (feats is rows x all)."""
    xs, ys = [], []
    for a, i in enumerate(rows):
        js = rows[rows != i]
        xs.append(feats[a, js])
        ys.append(families[js] == families[i])
    return np.concatenate(xs), np.concatenate(ys).astype(float)


def _stack(records: list[DNARecord], kinds: tuple[str, ...]) -> dict[str, Any]:
    """Each kind's vectors stacked in record order (a list for `SET_KINDS`, whose sets differ in size)."""
    return _stack_vectors([record_vectors(r) for r in records], kinds)


def _stack_vectors(vecs: list[dict[str, Any]], kinds: tuple[str, ...]) -> dict[str, Any]:
    bases = {"dna" if k == "dna_white" else k for k in kinds}
    return {b: [v[b] for v in vecs] if b in SET_KINDS else np.stack([v[b] for v in vecs]) for b in bases}


def available_kinds(records: list[DNARecord], wanted: tuple[str, ...] = EVIDENCE_ORDER) -> tuple[str, ...]:
    """Kinds of `wanted` that every record supports (``dna`` and ``dna_white`` always), in `wanted` order."""
    return _common_kinds([record_vectors(r) for r in records], wanted)


def _common_kinds(vecs: list[dict[str, Any]], wanted: tuple[str, ...] = EVIDENCE_ORDER) -> tuple[str, ...]:
    """`available_kinds` of records already unpacked by `record_vectors`."""
    have = set.intersection(*(set(v) for v in vecs)) if vecs else {"dna"}
    return tuple(k for k in wanted if k in ("dna", "dna_white") or k in have)


@dataclass
class Scores:
    """P(related) of a query to each record, and which evidence it rests on."""

    probability: np.ndarray
    kinds: tuple[str, ...]
    fallback: bool
    contributions: np.ndarray  # (n_records, n_features): coef * standardised feature
    feature_names: list[str]

    @property
    def note(self) -> str:
        used = ", ".join(self.kinds)
        if not self.fallback:
            return f"evidence: {used}"
        if self.kinds == ("dna",):
            return f"evidence: {used} (query lacks the extra evidence vectors; DNA-only model used)"
        return f"evidence: {used} (query or reference lacks some evidence, e.g. records made before phrase sets)"


@dataclass
class RelationModel:
    """Centring, whitening and one logistic model per evidence set (full and DNA-only fallback)."""

    means: dict[str, list[float]] = field(default_factory=dict)
    white: list[list[float]] | None = None
    heads: dict[str, dict[str, Any]] = field(default_factory=dict)  # ",".join(kinds) -> coef/intercept/mean/scale/cv
    n_records: int = 0
    n_labelled: int = 0

    # ---- fitting
    @classmethod
    def fit(cls, records: list[DNARecord], lineage: Any, folds: int = CV_FOLDS,
            kinds: tuple[str, ...] = DEFAULT_KINDS, measure: bool = True) -> RelationModel:
        """Fit on the labelled pairs of `records` (family from `lineage`); CV metrics by held-out families
        (`measure=False` skips them: `folds` more fits, for callers that refit many times).

        One head on the richest of `kinds` that all records carry, one without the `SET_KINDS` (for records made
        before them), one DNA-only fallback head."""
        info = read_lineage(lineage)
        families = np.array([labelled_family(info.get(r.model_id)) for r in records], dtype=object)
        parents = np.array([(info.get(r.model_id) or {}).get("parent", "") for r in records], dtype=object)
        if len(set(families) - {""}) < 3 or (families != "").sum() < 6:
            raise ReferenceStoreError("calibration needs at least 3 labelled families (6 models) in the reference")
        full = available_kinds(records, kinds)
        fallback = tuple(k for k in FALLBACK_KINDS if k in full or k == "dna")
        vectors = _stack(records, full)
        everyone = np.ones(len(records), dtype=bool)
        space = _fit_space(vectors, families, everyone)
        model = cls(
            means=_rounded({k: v.tolist() for k, v in space.means.items()}),
            white=None if space.white is None or "dna_white" not in full else _rounded(space.white.tolist()),
            n_records=len(records),
            n_labelled=int((families != "").sum()),
        )
        # records made before the phrase sets existed (e.g. pushed to a Hub dataset) still get the vectors' head
        without_sets = tuple(k for k in full if k not in SET_KINDS)
        for head_kinds in dict.fromkeys([full, without_sets, fallback]):
            head = _fit_head(vectors, families, head_kinds, everyone)
            if measure:
                head["cv"] = cross_validate(vectors, families, parents, [r.model_id for r in records], head_kinds, folds)
            model.heads[",".join(head_kinds)] = head
        return model

    # ---- scoring
    def _space(self) -> _Space:
        return _Space({k: np.asarray(v) for k, v in self.means.items()},
                      None if self.white is None else np.asarray(self.white))

    def choose_head(self, query: DNARecord, records: list[DNARecord]) -> tuple[tuple[str, ...], bool]:
        """The richest fitted evidence set that the query and all records carry; fallback flag."""
        return self._head_for(set(available_kinds([query, *records])))

    def _head_for(self, have: set[str]) -> tuple[tuple[str, ...], bool]:
        fitted = sorted((tuple(k.split(",")) for k in self.heads), key=len, reverse=True)
        for kinds in fitted:
            if set(kinds) <= have:
                return kinds, len(kinds) < len(fitted[0])
        raise ReferenceStoreError("the relation model has no DNA-only head; rebuild the reference calibration")

    def score(self, query: DNARecord, records: list[DNARecord]) -> Scores:
        """P(related) of `query` to each of `records`, with per-feature contributions."""
        if not records:
            return Scores(np.zeros(0), ("dna",), False, np.zeros((0, 0)), [])
        unpacked = [record_vectors(r) for r in [query, *records]]  # once: the phrase sets take a while to unpack
        kinds, fallback = self._head_for(set(_common_kinds(unpacked)))
        head = self.heads[",".join(kinds)]
        vectors = _stack_vectors(unpacked, kinds)
        space = self._space()
        sims, stats = {}, {}
        n = len(records)
        sample = np.unique(np.linspace(0, n - 1, min(n, STATS_SAMPLE)).astype(int))
        for kind in kinds:
            t = space.transform(kind, vectors["dna" if kind == "dna_white" else kind])
            if kind in VOTE_KINDS:
                sims[kind], block = _query_votes(t, answered_probes(vectors[kind]), sample)
            elif kind in SET_KINDS:  # rarity is counted among the query and the records together
                full = phrase_similarity(t)
                sims[kind], block = full[:1, 1:], full[1:, 1:][:, sample]
            else:
                sims[kind] = cosine_block(t[:1], t[1:])
                block = cosine_block(t[1:], t[1:][sample])
            block[sample, np.arange(len(sample))] = np.nan
            # the query is one of each record's neighbours, as every model is in the pairs the heads are fitted on
            stats[kind] = RefStats.from_block(np.concatenate([block, sims[kind].T], axis=1), n + 1)
        x = pair_features(sims, stats, kinds)[0]
        contrib = (x - np.asarray(head["mean"])) / np.asarray(head["scale"]) * np.asarray(head["coef"])
        prob = _sigmoid(contrib.sum(axis=1) + head["intercept"])
        return Scores(prob, kinds, fallback, contrib, feature_names(kinds))

    def all_pairs(self, records: list[DNARecord]) -> np.ndarray:
        """P(related) of every record (row, as query) to every other one (column); NaN on the diagonal.

        The same features the heads are fitted with (record-side statistics over all `records`)."""
        kinds, _ = self.choose_head(records[0], records[1:])
        head = self.heads[",".join(kinds)]
        x = _features_of_rows(_matrices(self._space(), _stack(records, kinds), kinds), np.arange(len(records)), kinds)
        z = ((x - np.asarray(head["mean"])) / np.asarray(head["scale"])) @ np.asarray(head["coef"]) + head["intercept"]
        prob = _sigmoid(z)
        prob[np.eye(len(records), dtype=bool)] = np.nan
        return prob

    def probability(self, query: DNARecord, records: list[DNARecord]) -> np.ndarray:
        """P(related) of `query` to each record (DNA-only fallback when evidence is missing: see `score`)."""
        return self.score(query, records).probability

    def explain(self, scores: Scores, index: int) -> dict[str, float]:
        """Evidence name -> its contribution to the log-odds for record `index`, largest first."""
        by_kind: dict[str, float] = {}
        for name, value in zip(scores.feature_names, scores.contributions[index]):
            kind = name.split(".")[0]
            by_kind[kind] = by_kind.get(kind, 0.0) + float(value)
        return dict(sorted(by_kind.items(), key=lambda kv: -abs(kv[1])))

    @property
    def cv(self) -> dict[str, dict[str, float]]:
        """Cross-validated metrics (families held out) per evidence set."""
        return {name: head.get("cv", {}) for name, head in self.heads.items()}

    # ---- serialisation
    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "means": self.means, "white": self.white, "heads": self.heads,
                "n_records": self.n_records, "n_labelled": self.n_labelled,
                "evidence_kinds": {k: EVIDENCE_DOC.get(k, k) for k in EVIDENCE_ORDER}}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RelationModel:
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ReferenceStoreError(f"calibration is not a {FORMAT} object")
        return cls(data["means"], data.get("white"), data["heads"], data.get("n_records", 0), data.get("n_labelled", 0))


def _query_votes(vectors: np.ndarray, answered: np.ndarray, sample: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vote similarities of a query (row 0 of `vectors`) to the records (rows 1:), and of the records to the
    `sample` columns (for record-side statistics); thresholds of records are taken among the sample."""
    units = _probe_units(vectors, answered)
    ans = answered.T
    query, refs, q_ans, r_ans = units[:, :1], units[:, 1:], ans[:, :1], ans[:, 1:]
    own = np.full(refs.shape[1], -1)
    own[sample] = np.arange(len(sample))
    r_thresholds = vote_thresholds(refs, refs[:, sample], r_ans[:, sample], own)
    q_thresholds = vote_thresholds(query, refs, r_ans)
    block = vote_similarity(refs, refs[:, sample], r_thresholds, r_thresholds[:, sample], r_ans, r_ans[:, sample])
    return vote_similarity(query, refs, q_thresholds, r_thresholds, q_ans, r_ans), block


def _rounded(value: Any) -> Any:
    """Nested lists/dicts of floats rounded to 5 significant digits (a compact calibration.json)."""
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return float(f"{value:.5g}") if isinstance(value, float) else value


EVIDENCE_DOC = {
    "dna": "paper DNA (128-d), centred on the reference mean",
    "dna_white": "paper DNA, centred and whitened by the within-family covariance",
    "lex": "hashed character n-gram sketch of the responses (formatting and wording)",
    "emb1024": "response embeddings projected to 1024 dims (a wider DNA)",
    "probe64": "per-probe response embeddings (64 dims each), compared by per-probe nearest-neighbour votes",
    "lexprobe64": "per-probe character n-gram sketches (64 dims each), compared by per-probe votes",
    "phrases": "hashed word 4-grams of each response, compared by the rarity-weighted share of phrases in common",
}


def _fit_head(vectors: dict[str, np.ndarray], families: np.ndarray, kinds: tuple[str, ...], train: np.ndarray,
              space: _Space | None = None) -> dict[str, Any]:
    space = space or _fit_space(vectors, families, train)
    rows = np.flatnonzero(train & (families != ""))
    matrices = _matrices(space, vectors, kinds)
    if "dna_white" in kinds:
        matrices["dna_white"] = _crossfit_white(space, vectors["dna"], families, rows, matrices["dna_white"])
    x, y = _train_pairs(_features_of_rows(matrices, rows, kinds), families, rows)
    coef, intercept, mean, scale = fit_logistic(x, y)
    return {"kinds": list(kinds), "features": feature_names(kinds), "coef": coef.tolist(), "intercept": intercept,
            "mean": mean.tolist(), "scale": scale.tolist(), "n_pairs": int(len(y)), "n_related_pairs": int(y.sum())}


def _crossfit_white(space: _Space, dna: np.ndarray, families: np.ndarray, rows: np.ndarray,
                    in_sample: np.ndarray) -> np.ndarray:
    """Whitened similarities in which each training row comes from a whitener fitted without its family.

    A whitener fitted on a family pulls that family together; features for fitting the logistic head must
    not see that, or the head over-trusts whitening on families it has never seen."""
    centred = dna - space.means["dna"]
    inner = family_folds(families[rows], CV_FOLDS)
    out = in_sample.copy()
    for k in range(CV_FOLDS):
        part = inner == k
        if not part.any():
            continue
        fit_rows = rows[~part]
        t = centred @ whitener(centred[fit_rows], families[fit_rows])
        out[rows[part]] = cosine_block(t[rows[part]], t)
    out = (out + out.T) / 2
    np.fill_diagonal(out, np.nan)
    return out


def family_folds(families: np.ndarray, folds: int) -> np.ndarray:
    """Fold index per row: labelled families spread over folds (largest first, deterministic); -1 unlabelled."""
    names, counts = np.unique(families[families != ""], return_counts=True)
    load = np.zeros(folds)
    fold_of = {}
    for name in names[np.argsort(-counts, kind="stable")]:
        f = int(np.argmin(load))
        fold_of[name] = f
        load[f] += counts[names == name][0]
    return np.array([fold_of.get(f, -1) for f in families])


def cv_score_matrix(vectors: dict[str, np.ndarray], families: np.ndarray, kinds: tuple[str, ...],
                    folds: int = CV_FOLDS, fold: np.ndarray | None = None) -> np.ndarray:
    """P(related) of every row (query) to every column, each row scored by a model fitted without its family
    (grouped k-fold by family; unlabelled rows by the first fold's model), or without its own `fold` when given
    (fold index per row, -1 for unlabelled: e.g. models held out one fold at a time, their families kept)."""
    fold = family_folds(families, folds) if fold is None else np.asarray(fold)
    score = np.full((len(families), len(families)), np.nan)
    for k in range(folds):
        test = np.flatnonzero((fold == k) | ((fold < 0) & (k == 0)))
        train = (fold != k) & (fold >= 0)
        if not len(test) or train.sum() < 4:
            continue
        space = _fit_space(vectors, families, train)
        head = _fit_head(vectors, families, kinds, train, space)
        x = _features_of_rows(_matrices(space, vectors, kinds), test, kinds)
        z = ((x - np.asarray(head["mean"])) / np.asarray(head["scale"])) @ np.asarray(head["coef"]) + head["intercept"]
        score[test] = _sigmoid(z)
    return score


def _fold_auc(score: np.ndarray, families: np.ndarray, fold: np.ndarray, folds: int) -> float:
    """Mean over folds of the AUC of the held-out rows' pairs, each fold scored by its own model.

    The pooled AUC mixes folds whose models have different base rates (a fold holding the biggest family is
    fitted on far fewer related pairs), which can pull it far below every single fold's AUC."""
    values = []
    for k in range(folds):
        rows = np.flatnonzero(fold == k)
        if not len(rows):
            continue
        same = families[rows][:, None] == families[None, :]
        other = np.ones_like(same)
        other[np.arange(len(rows)), rows] = False
        value = auc(score[rows][other], same[other])
        if np.isfinite(value):
            values.append(value)
    return float(np.mean(values)) if values else float("nan")


def cross_validate(vectors: dict[str, np.ndarray], families: np.ndarray, parents: np.ndarray, model_ids: list[str],
                   kinds: tuple[str, ...], folds: int = CV_FOLDS) -> dict[str, float]:
    """Grouped k-fold by family: fit on the other folds' families, score the held-out ones against everyone."""
    labelled = np.flatnonzero(families != "")
    score = cv_score_matrix(vectors, families, kinds, folds)
    # a pair between two held-out folds is scored from both sides: average
    sub = score[np.ix_(labelled, labelled)]
    sub = np.where(np.isnan(sub), sub.T, sub)
    metrics = pair_metrics(sub, families[labelled], parents[labelled], [model_ids[i] for i in labelled])
    metrics["auc_by_fold"] = _fold_auc(sub, families[labelled], family_folds(families, folds)[labelled], folds)
    iu = np.triu_indices(len(labelled), 1)
    same = (families[labelled][iu[0]] == families[labelled][iu[1]])
    p = ((sub + sub.T) / 2)[iu]
    metrics["brier"] = float(np.mean((p - same) ** 2))
    metrics["flag_precision"] = float(same[p >= 0.5].mean()) if (p >= 0.5).any() else float("nan")
    metrics["flag_recall"] = float((p[same] >= 0.5).mean())
    # the audit's view: does each labelled model's most probable relative clear 0.5, and is it right?
    masked = np.where(np.eye(len(labelled), dtype=bool), -np.inf, sub)
    best = masked.argmax(axis=1)
    fired = masked.max(axis=1) >= 0.5
    right = families[labelled][best] == families[labelled]
    metrics["nn_fire_rate"] = float(fired.mean())
    metrics["nn_fire_precision"] = float(right[fired].mean()) if fired.any() else float("nan")
    metrics["folds"] = folds
    return metrics
