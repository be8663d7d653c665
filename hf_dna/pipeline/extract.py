"""Model (or its responses) -> `DNARecord`: generate, embed, project.

``created_at`` follows ``$SOURCE_DATE_EPOCH`` when set (the reproducible-builds convention), so two runs with
the same inputs write byte-identical files.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import numpy as np

from ..errors import InvalidInputError
from ..evidence.sketches import record_evidence
from ..evidence.weights import weight_evidence
from ..hub import ModelMetadata
from .backends.api import ApiSettings, api_responses
from .backends.responses_file import read_responses_file
from .backends.transformers import local_metadata_or_none
from .device import encoder_device, torch_threads
from .dna import DEFAULT_DIM, DEFAULT_SEED, PROJECTION, project
from .embed import DEFAULT_ENCODER, Encoder, load_encoder
from .generate import generate_in_parts, generate_responses
from .probes import ProbeSet, load_probe_set
from .record import DNARecord
from .responses import GenerationSettings, Responses


def _created_at() -> dict[str, str]:
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if not epoch:
        return {}
    return {"created_at": datetime.fromtimestamp(int(epoch), timezone.utc).isoformat()}


def _encoder(encoder: str | Encoder | None) -> Encoder:
    if isinstance(encoder, Encoder):
        return encoder
    return load_encoder(encoder or DEFAULT_ENCODER, device=encoder_device())


def dna_from_texts(model_id: str, texts: list[str], probe_set: ProbeSet, *, dim: int = DEFAULT_DIM,
                   seed: int = DEFAULT_SEED, encoder: str | Encoder | None = None, revision: str = "local",
                   generation: dict[str, Any] | None = None) -> DNARecord:
    """Embed one response per probe (in probe order) and project to a `dim`-d DNA record."""
    if len(texts) != len(probe_set):
        raise InvalidInputError(f"{model_id}: {len(texts)} responses for {len(probe_set)} probes of {probe_set.name}")
    enc = _encoder(encoder)
    with torch_threads():
        embeddings = enc.encode(list(texts))
    return record_from_embeddings(model_id, list(texts), embeddings, probe_set, enc, dim=dim, seed=seed,
                                  revision=revision, generation=generation)


def record_from_embeddings(model_id: str, texts: list[str], embeddings: np.ndarray, probe_set: ProbeSet,
                           encoder: Encoder, *, dim: int = DEFAULT_DIM, seed: int = DEFAULT_SEED,
                           revision: str = "local", generation: dict[str, Any] | None = None,
                           declared_base_models: list[str] | None = None,
                           declared_relation: str | None = None) -> DNARecord:
    """The DNA record of per-probe response embeddings, with the evidence vectors the audit's relation model
    reads (`hf_dna.evidence.sketches.record_evidence`): the one place records are assembled, for models and references."""
    return DNARecord(model_id=model_id, dna=project(embeddings, dim=dim, seed=seed).tolist(),
                     probe_set=probe_set.name, probe_hash=probe_set.hash, n_probes=len(probe_set),
                     encoder=encoder.name, encoder_revision=encoder.revision, projection_seed=seed,
                     projection=PROJECTION, revision=revision, generation=dict(generation or {}),
                     declared_base_models=list(declared_base_models or []), declared_relation=declared_relation,
                     evidence=record_evidence(texts, embeddings, seed), **_created_at())


def record_from_responses(responses: Responses, probe_set: ProbeSet, *, dim: int = DEFAULT_DIM,
                          seed: int = DEFAULT_SEED, encoder: str | Encoder | None = None,
                          weights: bool = True) -> DNARecord:
    """`dna_from_texts` for a `Responses`, with the static evidence and (`weights`) the weight sketch of the
    model's files when they are known."""
    record = dna_from_texts(responses.model_id, responses.texts, probe_set, dim=dim, seed=seed, encoder=encoder,
                            revision=responses.revision, generation=responses.generation)
    if responses.static:
        record.evidence["static"] = dict(responses.static)
    if weights and responses.files:
        sketch = weight_evidence(responses.files)
        if sketch is not None:
            record.evidence["weights"] = sketch
    return record


def as_probe_set(probes: str | ProbeSet) -> ProbeSet:
    return probes if isinstance(probes, ProbeSet) else load_probe_set(probes)


#: where generated responses come from (`extract(backend=...)`)
BACKENDS = ("transformers", "api")


def extract(model: str, probes: str | ProbeSet = "paper600", *, responses: str | None = None,
            settings: GenerationSettings | None = None, dim: int = DEFAULT_DIM, seed: int = DEFAULT_SEED,
            encoder: str | Encoder = DEFAULT_ENCODER, revision: str | None = None, token: str | None = None,
            cache_dir: str | None = None, progress: bool = True, gguf_file: str | None = None,
            use_cache: bool = True, metadata: ModelMetadata | None = None, backend: str = "transformers",
            api: ApiSettings | None = None, name: str | None = None, weights: bool = True) -> DNARecord:
    """The DNA of `model`: from its `responses` file when given, else generated (cached) with `settings`.

    `name`: the record's model id (default: `model`, or a local directory's name). When `model` is a local
    dir or file, its files' static evidence and (`weights`) weight sketch go into the record, also with
    `responses`.

    `metadata`: the model's metadata when the caller already read it (the audit reads it once for the card),
    used for the record's static evidence instead of reading the model's files again.
    `backend`: ``transformers`` (run the model here) or ``api`` (ask a chat-completions API, `api`: where and
    how fast; default Hugging Face inference providers), see `hf_dna.pipeline.backends.api`."""
    probe_set = as_probe_set(probes)
    answers = model_responses(model, probe_set, responses=responses, settings=settings, revision=revision,
                              token=token, cache_dir=cache_dir, progress=progress, gguf_file=gguf_file,
                              use_cache=use_cache, metadata=metadata, backend=backend, api=api, name=name)
    return record_from_responses(answers, probe_set, dim=dim, seed=seed, encoder=encoder, weights=weights)


def model_responses(model: str, probe_set: ProbeSet, *, responses: str | None = None,
                    settings: GenerationSettings | None = None, revision: str | None = None, token: str | None = None,
                    cache_dir: str | None = None, progress: bool = True, gguf_file: str | None = None,
                    use_cache: bool = True, metadata: ModelMetadata | None = None, backend: str = "transformers",
                    api: ApiSettings | None = None, name: str | None = None) -> Responses:
    """`model`'s answers to `probe_set`, the first half of `extract` (same arguments): read from a `responses`
    file, asked of an API, or generated here (cached)."""
    if backend not in BACKENDS:
        raise InvalidInputError(f"backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
    if api is not None and backend != "api":
        raise InvalidInputError("API settings (base URL, key variable, concurrency) need backend 'api'")
    if responses is not None:
        answers = read_responses_file(responses, probe_set, model_id=name or model)
        answers.model_id = name or model
        if os.path.exists(model):  # the model's own files are here: read their evidence too
            answers.files = model
            answers.static = (metadata or local_metadata_or_none(model) or ModelMetadata(model)).static_evidence
    elif backend == "api":
        if gguf_file is not None:
            raise InvalidInputError("--gguf-file does not apply to --backend api (the server holds the weights)")
        answers = api_responses(model, probe_set, settings, api, token=token, cache_dir=cache_dir,
                                use_cache=use_cache, progress=progress, metadata=metadata)
    else:
        answers = generate_responses(model, probe_set, settings, revision=revision, token=token,
                                     cache_dir=cache_dir, gguf_file=gguf_file, progress=progress,
                                     use_cache=use_cache, metadata=metadata)
    if name:
        answers.model_id = name
    return answers


def answers_in_parts(model: str, probe_set: ProbeSet, first: int, *, settings: GenerationSettings | None = None,
                     revision: str | None = None, token: str | None = None, cache_dir: str | None = None,
                     progress: bool = True, gguf_file: str | None = None, use_cache: bool = True,
                     metadata: ModelMetadata | None = None, backend: str = "transformers",
                     api: ApiSettings | None = None) -> Iterator[Responses]:
    """`model_responses` asked in two steps: yields the answers to the first `first` probes of `probe_set`, then,
    only if the caller asks for more, to all of them; the first answers are kept and a local LM is loaded once
    (closing the iterator early frees it). Each step is cached as its own probe set."""
    if backend == "transformers":
        yield from generate_in_parts(model, probe_set, first, settings, revision=revision, token=token,
                                     cache_dir=cache_dir, gguf_file=gguf_file, progress=progress,
                                     use_cache=use_cache, metadata=metadata)
        return
    asking = dict(settings=settings, revision=revision, token=token, cache_dir=cache_dir, progress=progress,
                  gguf_file=gguf_file, use_cache=use_cache, metadata=metadata, backend=backend, api=api)
    answers = model_responses(model, probe_set.head(first), **asking)
    yield answers
    more = model_responses(model, probe_set.tail(first), **asking)
    yield answers.followed_by(more)
