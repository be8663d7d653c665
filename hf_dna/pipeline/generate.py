"""Responses of a model to a probe set: batch plan, response cache, and generation of what is still missing.

Every finished batch goes to the response cache (`hf_dna.pipeline.cache`), so an interrupted run resumes
without regenerating what it already has. Results come back in probe order.
"""
from __future__ import annotations

import os
from collections.abc import Iterator

from ..hub import ModelMetadata
from .backends.transformers import TransformersGenerator, file_metadata, resolve_source
from .cache import ResponseCache, cache_key, default_cache_dir
from .device import torch_threads
from .probes import ProbeSet
from .responses import GenerationSettings, Responses


def plan_batches(lengths: list[int], batch_size: int) -> list[list[int]]:
    """Probe indices grouped into batches of similar prompt length (longest first, stable)."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


class ResponseJob:
    """One model x one probe set: its batch plan, its cache, and generation of any batches still missing."""

    def __init__(self, model: str, probe_set: ProbeSet, settings: GenerationSettings | None = None, *,
                 revision: str | None = None, token: str | None = None, cache_dir: str | os.PathLike | None = None,
                 gguf_file: str | None = None, use_cache: bool = True, metadata: ModelMetadata | None = None,
                 generator: TransformersGenerator | None = None):
        self.probe_set = probe_set
        self.metadata = metadata  # what the caller already read of the model's files (read here otherwise)
        self.settings = generator.settings if generator is not None else (settings or GenerationSettings())
        self.source = generator.source if generator is not None else resolve_source(model, revision, token, gguf_file)
        self.generator = generator or TransformersGenerator(self.source, self.settings)  # a loaded one is kept
        self.prompt_ids = self.generator.prompt_ids(probe_set.prompts)
        self.batches = plan_batches([len(ids) for ids in self.prompt_ids], self.generator.batch_size)
        generation = self.generator.generation_info()
        key = cache_key(self.source.model_id, self.source.fingerprint, probe_set.hash, generation)
        root = (cache_dir if cache_dir is not None else default_cache_dir()) if use_cache else None
        self.cache = ResponseCache(root, key, {"model": self.source.model_id, "revision": self.source.fingerprint,
                                               "probe_set": probe_set.name, "probe_hash": probe_set.hash,
                                               "generation": generation})
        self.generation = generation

    def missing(self, done: dict[int, str]) -> list[int]:
        """Numbers of the batches with a probe not in `done`."""
        return [b for b, batch in enumerate(self.batches) if any(i not in done for i in batch)]

    def run(self, batch_numbers: list[int], progress: bool = True) -> dict[int, str]:
        """Generate the given batches (cached ones are read, not regenerated); ``{probe index: text}``."""
        from tqdm.auto import tqdm

        done = self.cache.load()
        wanted = {i for b in batch_numbers for i in self.batches[b]}
        result = {i: t for i, t in done.items() if i in wanted}
        todo = [b for b in self.missing(done) if b in set(batch_numbers)]
        if not todo:
            return result
        with torch_threads():
            self.generator.model  # noqa: B018  (load before the bar opens, so loading messages do not break it)
            with tqdm(total=len(wanted), initial=len(result), disable=not progress, unit="probe",
                      desc=f"generate {self.source.model_id}") as bar:
                for b in todo:
                    batch = self.batches[b]
                    texts = self.generator.generate_batch([self.prompt_ids[i] for i in batch], b)
                    self.cache.save_batch(b, batch, texts)
                    result.update(zip(batch, texts))
                    bar.update(len(batch))
        return result

    def responses(self, texts: dict[int, str]) -> Responses:
        metadata = self.metadata if self.metadata is not None else file_metadata(self.source)
        weights = self.source.path / self.source.gguf_file if self.source.gguf_file else self.source.path
        return Responses(self.source.model_id, self.source.revision, [texts[i] for i in range(len(self.probe_set))],
                         self.generation, metadata.static_evidence if metadata else {}, str(weights))


def generate_responses(model: str, probe_set: ProbeSet, settings: GenerationSettings | None = None, *,
                       revision: str | None = None, token: str | None = None, cache_dir: str | None = None,
                       gguf_file: str | None = None, progress: bool = True, use_cache: bool = True,
                       metadata: ModelMetadata | None = None) -> Responses:
    """Generate (or read back from the cache) one response per probe of `probe_set` with `model`.

    `model` is a local directory, a ``.gguf`` file, or a Hub repo id (with `gguf_file` for GGUF repos).
    `cache_dir` is the response cache root (default `hf_dna.pipeline.cache.default_cache_dir()`); `metadata`, when
    the caller already read it, is used for the record's static evidence instead of reading the files again.
    """
    job = ResponseJob(model, probe_set, settings, revision=revision, token=token, cache_dir=cache_dir,
                      gguf_file=gguf_file, use_cache=use_cache, metadata=metadata)
    texts = job.run(list(range(len(job.batches))), progress)
    job.generator.release()  # the LM's memory is free before the sentence encoder loads (lower peak RSS)
    return job.responses(texts)


def generate_in_parts(model: str, probe_set: ProbeSet, first: int, settings: GenerationSettings | None = None, *,
                      revision: str | None = None, token: str | None = None, cache_dir: str | None = None,
                      gguf_file: str | None = None, progress: bool = True, use_cache: bool = True,
                      metadata: ModelMetadata | None = None) -> Iterator[Responses]:
    """`generate_responses` in two asks: yields the answers to the first `first` probes, then, if the caller goes
    on, to all of `probe_set` (the first ones kept, the rest generated with the same LM, loaded once). Each part is
    cached under its own probe set (`ProbeSet.head` / `ProbeSet.tail`); a row's sampling noise depends on its
    prompt only (`decode`), not on its batch-mates."""
    head, tail = probe_set.head(first), probe_set.tail(first)
    job = ResponseJob(model, head, settings, revision=revision, token=token, cache_dir=cache_dir,
                      gguf_file=gguf_file, use_cache=use_cache, metadata=metadata)
    try:
        answers = job.responses(job.run(list(range(len(job.batches))), progress))
        yield answers
        rest = ResponseJob(model, tail, cache_dir=cache_dir, use_cache=use_cache, metadata=metadata,
                           generator=job.generator)
        more = rest.responses(rest.run(list(range(len(rest.batches))), progress))
        yield answers.followed_by(more)
    finally:
        job.generator.release()
