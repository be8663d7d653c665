"""The decoding loop of the transformers backend: one prefill of a left-padded batch, then one token a step for
the rows still unfinished. A row leaves the batch, and its KV cache, at its end-of-sequence token, so every step
costs what the unfinished rows need (profiled on CPU, SmolLM2 at 256 sampled tokens: 61-73% of the row-steps of
`generate()` were spent on rows already finished).

Greedy rows take the arg-max, as `generate()` does. Sampled rows draw from the nucleus (``top_p``) of the
temperature-scaled top-50 (transformers' default top-k) with noise fixed by the run's seed, the row's prompt tokens,
the step and the token id (so models asked the same prompt share it): a probe's answer does not depend on which
probes share its batch, the batch size, or what ran before. The nucleus is the one of transformers'
`TopPLogitsWarper` (the most probable tokens until their mass reaches ``top_p``), taken from the top-k instead of
a sort of the whole vocabulary at every step.
"""
from __future__ import annotations

import functools
import hashlib
import inspect
from dataclasses import dataclass
from typing import Any

#: the top-k that transformers' `generate()` applies by default before top-p (its global default, so what
#: llm-dna and the LLM DNA paper's sampling used); the loop applies it too, in the same order
TOP_K = 50
#: prompt tokens (rows x padded width) run through the model at once in the prefill, on CPU and on a GPU (where a
#: forward is bound by kernel launches, so fewer, bigger pieces are faster)
PREFILL_TOKENS, GPU_PREFILL_TOKENS = 1024, 16384


@dataclass(frozen=True)
class Sampling:
    """How a row picks its next token: greedy (``temperature`` None) or nucleus sampling."""

    temperature: float | None = None
    top_p: float = 1.0
    seed: int = 0
    top_k: int | None = TOP_K


def supports(model: Any) -> bool:
    """Whether `model`'s forward takes the arguments this loop passes (a KV cache and ``logits_to_keep``); models
    with other signatures (custom code, old architectures) go through `generate()` instead."""
    params = inspect.signature(model.forward).parameters
    return _cache_argument(params) is not None and "logits_to_keep" in params and "attention_mask" in params


def _cache_argument(params: Any) -> str | None:
    return next((name for name in ("cache", "past_key_values") if name in params), None)


def row_seed(seed: int, prompt: list[int]) -> int:
    """The seed of one row's sampling noise (`race_noise`): the run's seed and the prompt's token ids, hashed
    (63 bits)."""
    digest = hashlib.sha256(f"{seed}:{','.join(map(str, prompt))}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def decode(model: Any, input_ids: Any, attention_mask: Any, prompts: list[list[int]], *, max_new_tokens: int,
           eos_ids: list[int], sampling: Sampling) -> list[list[int]]:
    """New tokens of each row of a left-padded batch, each cut before its first end-of-sequence token."""
    import torch

    params = inspect.signature(model.forward).parameters
    cache_arg = _cache_argument(params)
    takes_positions = "position_ids" in params
    rows = list(range(input_ids.shape[0]))  # the batch row of each row still decoding
    mask = attention_mask
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    seeds = [row_seed(sampling.seed, p) for p in prompts] if sampling.temperature is not None else None
    eos = torch.tensor(sorted(set(eos_ids)) or [-1], device=input_ids.device)
    tokens: list[list[int]] = [[] for _ in prompts]

    def forward(ids: Any, mask: Any, positions: Any, cache: Any) -> Any:
        kwargs = {cache_arg: cache, "attention_mask": mask, "use_cache": True, "logits_to_keep": 1}
        if takes_positions:
            kwargs["position_ids"] = positions
        return model(input_ids=ids, **kwargs).logits[:, -1].float()

    logits, cache = _prefill(forward, input_ids, mask, positions, model, input_ids.shape[1] + max_new_tokens)
    for step in range(max_new_tokens):
        chosen = _next_tokens(logits, sampling, [seeds[r] for r in rows] if seeds else None, step)
        finished = torch.isin(chosen, eos)
        for row, token, done in zip(rows, chosen.tolist(), finished.tolist()):
            if not done:
                tokens[row].append(token)
        if step == max_new_tokens - 1 or bool(finished.all()):
            break
        if bool(finished.any()):
            keep = (~finished).nonzero().squeeze(1)
            cache.batch_select_indices(keep)
            rows = [rows[i] for i in keep.tolist()]
            chosen, mask, positions = chosen[keep], mask[keep], positions[keep]
        mask = torch.cat([mask, mask.new_ones((mask.shape[0], 1))], dim=1)
        positions = positions[:, -1:] + 1
        logits = forward(chosen[:, None], mask, positions, cache)
    return tokens


def _prefill(forward: Any, input_ids: Any, mask: Any, positions: Any, model: Any,
             capacity: int) -> tuple[Any, Any]:
    """The prompts' last logits and their KV cache, with room for `capacity` positions reserved up front
    (`ReservedLayer`). Where every layer of the cache is a plain growing one, the prompts run `PREFILL_TOKENS` at
    a time (rows of the padded batch), writing into that room: the activations of a whole batch of long prompts
    at once, and a cache copied at every step, are what set the peak memory of a run."""
    import torch

    cache = _new_cache(model)
    layers = getattr(cache, "layers", None)
    if layers is None:  # older transformers: its own cache, the whole batch at once
        return forward(input_ids, mask, positions, cache), cache
    from transformers.cache_utils import DynamicLayer

    reserved = _reserved_layer_class()
    plain = [number for number, layer in enumerate(layers) if type(layer) is DynamicLayer]
    for number in plain:
        layers[number] = reserved(input_ids.shape[0], capacity)
    tokens = PREFILL_TOKENS if input_ids.device.type == "cpu" else GPU_PREFILL_TOKENS
    width = input_ids.shape[1]
    pieces = len(plain) == len(layers)
    step = max(1, tokens // width) if pieces else input_ids.shape[0]
    logits = []
    for start in range(0, input_ids.shape[0], step):
        rows = slice(start, start + step)
        # a piece of shorter prompts skips the columns that are padding in all its rows (left padding): they stay
        # zero in the cache, masked, and cost no FLOPs
        skip = width - int(mask[rows].sum(dim=1).max()) if pieces else 0
        for number in plain:
            layers[number].select(rows, skip, fresh=True)
        logits.append(forward(input_ids[rows, skip:], mask[rows], positions[rows, skip:], cache))
    for number in plain:
        layers[number].select(slice(None), width)
    return torch.cat(logits), cache


def _new_cache(model: Any) -> Any:
    from transformers import DynamicCache

    try:
        return DynamicCache(config=model.config.get_text_config(decoder=True))
    except TypeError:  # transformers before the config-aware cache
        return DynamicCache()


@functools.cache
def _reserved_layer_class() -> type:
    from transformers.cache_utils import DynamicLayer

    class ReservedLayer(DynamicLayer):
        """A `DynamicLayer` whose keys and values live in buffers sized for the whole batch and answer, allocated
        at the first write: `DynamicLayer` concatenates a slightly bigger copy of itself at every step, which
        fragments the heap. Writes go to the rows `select`ed (the prefill fills the batch a few rows at a time)."""

        def __init__(self, rows: int, capacity: int):
            super().__init__()
            self._shape, self._rows, self._length, self._fresh = (rows, capacity), slice(None), 0, False
            self._keys = self._values = None

        def select(self, rows: slice, length: int, fresh: bool = False) -> None:
            """Write the next keys and values at position `length` of `rows`; `fresh`: the positions before it
            were never written for these rows (a prefill piece that skips padding) and are zeroed first."""
            self._rows, self._length, self._fresh = rows, length, fresh and length > 0
            if self._keys is not None:
                self._view()

        def _view(self) -> None:
            self.keys = self._keys[self._rows, :, :self._length]
            self.values = self._values[self._rows, :, :self._length]

        def update(self, key_states: Any, value_states: Any, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
            import torch

            if self._keys is None:
                self.lazy_initialization(key_states, value_states)
                rows, capacity = self._shape
                shape = (rows, key_states.shape[1], capacity, key_states.shape[-1])
                self._keys, self._values = key_states.new_empty(shape), value_states.new_empty(shape)
            start, new = self._length, key_states.shape[-2]
            if self._fresh:  # masked padding must still hold numbers: garbage could be NaN, and NaN * 0 is NaN
                self._keys[self._rows, :, :start] = 0
                self._values[self._rows, :, :start] = 0
                self._fresh = False
            if start + new > self._keys.shape[-2]:  # past the reserved room: grow by doubling
                pad = (0, 0, 0, max(start + new, 2 * self._keys.shape[-2]) - self._keys.shape[-2])
                self._keys = torch.nn.functional.pad(self._keys, pad)
                self._values = torch.nn.functional.pad(self._values, pad)
            self._keys[self._rows, :, start:start + new] = key_states
            self._values[self._rows, :, start:start + new] = value_states
            self._length = start + new
            self._view()
            return self.keys, self.values

        def get_seq_length(self) -> int:
            return self._length

        def batch_select_indices(self, indices: Any) -> None:
            if self._keys is not None:
                self._keys, self._values = self._keys[indices], self._values[indices]
                self._view()

        def crop(self, tokens_to_remove: int) -> None:
            if tokens_to_remove < 0 and self._keys is not None:
                self._length = max(0, self._length + tokens_to_remove)
                self._view()

    return ReservedLayer


def _next_tokens(logits: Any, sampling: Sampling, row_seeds: list[int] | None, step: int = 0) -> Any:
    """Greedy: the arg-max. Sampled: temperature, then the top-k, then the nucleus of what is left (the order of
    transformers' warpers), and one draw per row by the exponential race (``argmax p / E``, which picks a token
    with probability ``p``) with ``E`` drawn per (row seed, step, token id) by `race_noise`: two models asked the
    same prompt share the noise of every token, so where their distributions agree they draw the same token (as
    `generate()` does with one seed for the whole batch, which keeps parents and children close)."""
    if row_seeds is None:
        return logits.argmax(dim=-1)
    import numpy as np
    import torch

    probs = (logits / sampling.temperature).softmax(dim=-1)
    if sampling.top_k:  # the top-k's own distribution, as top-p sees it after top-k
        top, order = probs.topk(min(sampling.top_k, probs.shape[-1]), dim=-1)
        top = top / top.sum(dim=-1, keepdim=True)
    else:
        top, order = probs.sort(dim=-1, descending=True)
    noise = race_noise(np.array(row_seeds, dtype=np.uint64)[:, None], step, order.cpu().numpy())
    race = (top.double() / torch.from_numpy(noise).to(top.device)).masked_fill(~nucleus_mask(top, sampling.top_p),
                                                                             -float("inf"))
    return order.gather(-1, race.argmax(dim=-1, keepdim=True)).squeeze(-1)


def race_noise(seed: Any, step: int, tokens: Any) -> Any:
    """Exp(1) draws, one per token id, fixed by (`seed`, `step`, token): splitmix64 of the three, as float64
    (`seed` an int or an array broadcasting against `tokens`, e.g. one row seed per row of token ids)."""
    import numpy as np

    with np.errstate(over="ignore"):
        z = (np.asarray(seed, dtype=np.uint64) ^ np.uint64((step * 0xD1B54A32D192ED03) & (2**64 - 1))
             ^ (tokens.astype(np.uint64) * np.uint64(0x8CB92BA72F3D8DD7)))
        z = z + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    uniform = ((z >> np.uint64(11)).astype(np.float64) + 0.5) / 2.0**53
    return -np.log(uniform)


def nucleus_mask(sorted_probs: Any, top_p: float) -> Any:
    """Which of the most probable tokens (probabilities sorted descending, last axis) form the nucleus: those whose
    more probable tokens hold less than `top_p` of the mass (so the token that crosses `top_p` is kept; at least
    the first)."""
    if top_p >= 1.0:
        return sorted_probs.new_ones(sorted_probs.shape, dtype=bool)
    keep = (sorted_probs.cumsum(-1) - sorted_probs) < top_p
    keep[..., 0] = True
    return keep


def nucleus_size(sorted_probs: Any, top_p: float) -> int:
    """How many tokens of one sorted distribution form the nucleus (`nucleus_mask`)."""
    return int(nucleus_mask(sorted_probs, top_p).sum())
