"""Weight sketches: a compact fingerprint of an open-weight model read from its files, and the comparison of two.

A fine-tune, a merged adapter, a quantized or re-uploaded copy keeps its base's tensor shapes and stays close to its
weights (the idea behind HuRef / REEF / Model Atlas weight provenance). `sketch_files` / `sketch_hub` read a few
contiguous *rows* of chosen tensors (one byte range each; bitsandbytes 4-bit: a few) from safetensors, GGUF or
bitsandbytes checkpoints, local or on the Hub, without loading the model or downloading its weights, and keep
20-55 KB of JSON:

- **which tensors**: the value (``attn_v``), output (``attn_output``) and MLP (``ffn_gate``/``ffn_up``/``ffn_down``)
  matrices and the norms of up to 8 layers spread over the depth, the token embedding, the final norm and an untied
  output head. Roles carry GGUF's architecture-independent names (``blk.3.ffn_down``, ``token_embd``); safetensors
  names are mapped with gguf-py's ``TensorNameMap`` for the config's ``model_type`` (GPT-2's transposed Conv1D
  matrices get a ``@conv1d`` suffix: comparable among themselves, not with GGUF). Q and K are left out: llama.cpp
  permutes their rows for rope, so GGUF and safetensors disagree there (a LoRA on q/k only is invisible).
- **which rows**: from row 0 (embedding and output head: from token id 1000 when the vocab is large enough, so an
  extended vocab, which appends, still lines up), ``ceil(8192 / row_length)`` rows, at most 64: chosen from the shape
  alone, never from the dtype, so a cast or a quantized copy reads the same values.
- **what is kept per tensor**: the slice, centred, through a seeded count-sketch (``DIM`` = 192 signed buckets: a
  linear random projection that preserves inner products), stored as base64 float16 scaled to its largest value,
  plus the storage noise its dtype implies, relative to the slice's variance (``noise``): rounding for bf16/fp16
  (each value's ulp), quantization for GGUF and bitsandbytes types (each block's grid step, read back from the
  dequantized values; ``approx`` for non-linear codebooks: IQ*, MXFP4, nf4/fp4), and ``grid_noise`` when a float or
  8-bit matrix still lies on a 4-bit grid (at most 16 distinct values per 32: a dequantized re-upload).

`compare_sketches` takes, per tensor present with the same shape in both, the Pearson correlation ``r`` of the
slices (cosine of the centred sketches) and ``D = 2 (1 - r)``, the squared difference relative to the slice's
variance. A tensor is *same* when ``D <= K_SAME * rounding noise + D_FLOOR`` (a re-upload, cast, re-shard, or a
dequantized copy of a quantized file); *quantized* when ``D`` is ``Q_LO..Q_HI`` times some sum of the quantization
noises the two sketches carry (one side quantized from the other's values, or both from a common source); otherwise
*differs*. The relation follows a fitted calibration (`hf_dna.evidence.weight_calibration`, its coefficients and
decision point in ``weight_calibration.json``, rebuilt by ``python scripts/fit_weight_calibration.py``): a logistic
regression on the median and lower-quartile ``r`` over the tensors compared gives ``p_related``; below the fitted
decision point ``unrelated``; at or above it ``near-identical`` when at least ``WITHIN_NOISE_MIN`` of the tensors are
same or quantized, ``close`` (fine-tune, merge, merged adapter) otherwise. Models with no tensor of a common shape
give ``similarity=None`` and "no weight evidence: shapes differ", and fewer than ``MIN_TENSORS`` comparable tensors
give ``relation=None`` ("no weight evidence: only N tensors ..."): never "unrelated".

The calibration was fitted on 1890 pairs built here (3 tiny Llama families of 20 models from different inits:
570 derived, 1320 unrelated; AUC 1.0, zero false positives, decision point P=0.41 in the middle of a log-odds margin
of 8.8). The noise defaults were set on `bench/bench_weights.py` (2026-12-02; the same families and
SmolLM2-135M: dtype casts, re-sharding, GGUF F16/Q8_0/Q4_1/Q4_0/Q4_K-mix, bitsandbytes nf4/int8, dequantized and
re-quantized copies, fine-tunes of 3 to 100 steps, merged q/v LoRA, added tokens, unrelated same-config models
trained on the same text): per tensor, D / rounding noise of casts 0.98 median, 1.44 max (K_SAME 3); D / quantization
noise of quantized copies 0.57-1.38 (band 0.4-2.5); 72/72 labelled pairs right; unrelated pairs |median r| <= 0.04
against derived >= 0.89 (AUC 1.0, margin 0.85). A fine-tune too small to move the weights past bf16 rounding
(3 AdamW steps at lr 1e-4 on SmolLM2) differs in only 3 of 58 tensors, hence WITHIN_NOISE_MIN 0.98. Known miss:
re-quantizing weights that are already on a 4-bit grid into another 4-bit format (Q4_1 -> Q4_K) is nearly lossless,
so those tensors read as differing ("close"). The near-identical / close split (K_SAME, Q_LO/Q_HI,
WITHIN_NOISE_MIN) is still hand-set, not fitted; the result carries the raw similarity, distance and per-tensor
numbers beside P(related).

Never unpickles anything: only ``*.safetensors`` and ``*.gguf`` are read; a pickle-only model gives None.
Corrupt or truncated headers raise `CorruptModelFileError`; a tensor type that cannot be decoded raises
`UnsupportedWeightsError` (a `CorruptModelFileError`), both with one-line messages.
"""
from __future__ import annotations

import base64
import itertools
import json
import math
import os
import re
import struct
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CorruptModelFileError

SCHEME = "hf-dna.weight-sketch"
VERSION = 1
DIM = 192                #: count-sketch buckets per tensor
SEED = 20251202          #: projection seed (same for every model, or sketches are not comparable)
TARGET_VALUES = 8192     #: values read per matrix: ceil(TARGET_VALUES / row_length) rows ...
MAX_ROWS = 64            #: ... at most this many
MAX_VECTOR = 16384       #: values read from a 1-D tensor (norms)
EMBED_START = 1000       #: first token id read from the embedding / output head (0 when the vocab is smaller)
N_LAYERS = 8             #: layers sampled, spread over the depth

MATRIX_ROLES = ("attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down")
NORM_ROLES = ("attn_norm", "ffn_norm", "post_attention_norm", "post_ffw_norm")
GLOBAL_ROLES = ("token_embd", "output", "output_norm")
_VOCAB_ROLES = ("token_embd", "output")

#: decision defaults (see the module docstring and bench/bench_weights.py for how they were measured)
K_SAME = 3.0             #: D <= K_SAME * rounding noise + D_FLOOR: the same weights within storage precision
D_FLOOR = 1e-6           #: sketch precision (float16 sketches, summation order)
Q_LO, Q_HI = 0.4, 2.5    #: D / quantization noise in this band: a quantization of the same weights
WITHIN_NOISE_MIN = 0.98  #: share of tensors within noise for near-identical (1 in 50 may stray)
MIN_TENSORS = 4          #: fewer tensors compared than this: no weight evidence (relation None)


class UnsupportedWeightsError(CorruptModelFileError):
    """A weights file uses a tensor type this sketch cannot decode (e.g. a GGUF quantization gguf-py lacks)."""


# ---- sources: a file read by byte ranges, local or on the Hub --------------------------------------------------------
class _Counter:
    def __init__(self) -> None:
        self.bytes = 0
        self.requests = 0
        self._lock = threading.Lock()

    def add(self, n: int) -> None:
        with self._lock:
            self.bytes += n
            self.requests += 1


class _Source:
    """One file, read by byte ranges; `read` returns exactly `length` bytes or raises CorruptModelFileError."""

    def __init__(self, name: str, size: int, reader: Callable[[int, int], bytes], counter: _Counter):
        self.name, self.size, self._reader, self._counter = name, size, reader, counter

    def read(self, offset: int, length: int) -> bytes:
        if length <= 0:
            return b""
        if offset < 0 or offset + length > self.size:
            raise CorruptModelFileError(f"{self.name} is truncated (needs bytes up to {offset + length}, "
                                        f"has {self.size})")
        data = self._reader(offset, length)
        self._counter.add(len(data))
        if len(data) != length:
            raise CorruptModelFileError(f"{self.name} is truncated (short read at byte {offset})")
        return data


def _local_source(path: Path, name: str, counter: _Counter) -> _Source:
    def reader(offset: int, length: int) -> bytes:
        with open(path, "rb") as handle:
            handle.seek(offset)
            return handle.read(length)

    return _Source(name, path.stat().st_size, reader, counter)


class _Prefix:
    """The head of a file, fetched in growing chunks as a header parser needs more (never re-read)."""

    def __init__(self, src: _Source, first: int = 1 << 18):
        self.src, self.data, self.chunk = src, bytearray(), first

    def need(self, end: int) -> None:
        if end <= len(self.data):
            return
        if end > self.src.size:
            raise CorruptModelFileError(f"{self.src.name}: header is truncated")
        want = min(max(end, len(self.data) + self.chunk), self.src.size)
        self.chunk *= 2
        self.data += self.src.read(len(self.data), want - len(self.data))


# ---- headers -----------------------------------------------------------------------------------------------------------
@dataclass
class _Entry:
    """One tensor in a file: where its bytes are and how to decode them (shape in numpy / row-major order)."""

    src: _Source
    dtype: str                 # safetensors dtype (F32, BF16, ...) or GGML type name (Q4_K, F16, ...)
    shape: tuple[int, ...]
    offset: int                # absolute byte offset of the tensor's data in the file
    ggml: bool = False
    parts: dict[str, _Entry] | None = None   # bitsandbytes: absmax, quant_map, nested_*, SCB
    state: dict | None = None                # bitsandbytes 4-bit: its quant_state JSON


_ST_FLOAT = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2}
_ST_ITEMSIZE = {**_ST_FLOAT, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "U16": 2, "U32": 4, "U64": 8,
                "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1, "F8_E8M0": 1, "F4": 1, "F6_E2M3": 1, "F6_E3M2": 1}


def _safetensors_entries(src: _Source) -> dict[str, _Entry]:
    """Tensor entries from a safetensors header (8-byte little-endian length + JSON), validated."""
    name = src.name
    if src.size < 8:
        raise CorruptModelFileError(f"{name}: safetensors file is truncated ({src.size} bytes)")
    head = src.read(0, min(src.size, 1 << 15))
    (length,) = struct.unpack("<Q", head[:8])
    if length < 2 or 8 + length > src.size or length > 100_000_000:
        raise CorruptModelFileError(f"{name}: safetensors header length {length} does not fit a "
                                    f"{src.size}-byte file (truncated or corrupt)")
    raw = head[8:8 + length] if 8 + length <= len(head) else head[8:] + src.read(len(head), 8 + length - len(head))
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise CorruptModelFileError(f"{name}: safetensors header is not valid JSON (corrupt file)") from None
    if not isinstance(header, dict):
        raise CorruptModelFileError(f"{name}: safetensors header is not a JSON object (corrupt file)")
    data_start, data_size = 8 + length, src.size - 8 - length
    entries = {}
    for key, info in header.items():
        if key == "__metadata__":
            continue
        try:
            dtype, shape, (begin, end) = info["dtype"], tuple(int(d) for d in info["shape"]), info["data_offsets"]
            begin, end = int(begin), int(end)
        except (TypeError, KeyError, ValueError):
            raise CorruptModelFileError(f"{name}: safetensors entry {key!r} is malformed") from None
        if not 0 <= begin <= end <= data_size or any(d < 0 for d in shape):
            raise CorruptModelFileError(f"{name}: tensor {key!r} lies outside the file (truncated or corrupt)")
        itemsize = _ST_ITEMSIZE.get(dtype)
        if itemsize is not None and dtype not in ("F4", "F6_E2M3", "F6_E3M2") and \
                end - begin != math.prod(shape) * itemsize:
            raise CorruptModelFileError(f"{name}: tensor {key!r} size does not match its shape and dtype")
        entries[key] = _Entry(src, str(dtype), shape, data_start + begin)
    return entries


_GGUF_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_GGUF_STRING, _GGUF_ARRAY = 8, 9
_GGUF_KEEP = {"general.architecture", "general.alignment"}


def _gguf_entries(src: _Source) -> tuple[dict[str, _Entry], dict[str, Any]]:
    """Tensor entries and a few metadata keys from a GGUF header; token arrays are skipped, not decoded."""
    import gguf

    buf = _Prefix(src)
    pos = 0

    def take(fmt: str):
        nonlocal pos
        width = struct.calcsize(fmt)
        buf.need(pos + width)
        (value,) = struct.unpack_from(fmt, buf.data, pos)
        pos += width
        return value

    def string(keep: bool = True) -> str:
        nonlocal pos
        length = take("<Q")
        if length > src.size:
            raise CorruptModelFileError(f"{src.name}: GGUF header is corrupt (string of {length} bytes)")
        buf.need(pos + length)
        pos += length
        return bytes(buf.data[pos - length:pos]).decode("utf-8", "replace") if keep else ""

    def skip(kind: int, keep: bool):
        nonlocal pos
        if kind == _GGUF_STRING:
            return string(keep)
        if kind == _GGUF_ARRAY:
            item, count = take("<I"), take("<Q")
            if count > src.size:
                raise CorruptModelFileError(f"{src.name}: GGUF header is corrupt (array of {count} items)")
            if item in _GGUF_SCALARS:
                pos += count * struct.calcsize(_GGUF_SCALARS[item])
                buf.need(pos)
                return None
            for _ in range(count):
                skip(item, False)
            return None
        if kind not in _GGUF_SCALARS:
            raise CorruptModelFileError(f"{src.name}: GGUF header is corrupt (value type {kind})")
        return take(_GGUF_SCALARS[kind])

    buf.need(min(src.size, 24))
    if bytes(buf.data[:4]) != b"GGUF":
        raise CorruptModelFileError(f"{src.name} is not a GGUF file (bad magic)")
    pos = 4
    version = take("<I")
    if version not in (2, 3):
        raise CorruptModelFileError(f"{src.name}: GGUF version {version} is not supported")
    n_tensors, n_kv = take("<Q"), take("<Q")
    if n_tensors > 1_000_000 or n_kv > 1_000_000:
        raise CorruptModelFileError(f"{src.name}: GGUF header is corrupt ({n_tensors} tensors, {n_kv} keys)")
    meta: dict[str, Any] = {}
    for _ in range(n_kv):
        key = string()
        value = skip(take("<I"), True)
        if key in _GGUF_KEEP:
            meta[key] = value
    infos = []
    for _ in range(n_tensors):
        tname = string()
        n_dims = take("<I")
        if n_dims > 8:
            raise CorruptModelFileError(f"{src.name}: GGUF tensor {tname!r} has {n_dims} dimensions (corrupt)")
        dims = [take("<Q") for _ in range(n_dims)]
        infos.append((tname, dims, take("<I"), take("<Q")))
    alignment = int(meta.get("general.alignment") or 32)
    if alignment <= 0 or alignment & (alignment - 1):
        raise CorruptModelFileError(f"{src.name}: GGUF alignment {alignment} is invalid")
    data_start = (pos + alignment - 1) // alignment * alignment
    entries = {}
    for tname, dims, type_id, offset in infos:
        try:
            qtype = gguf.GGMLQuantizationType(type_id)
            type_name = qtype.name
        except ValueError:
            type_name = f"ggml-type-{type_id}"
        if data_start + offset > src.size:
            raise CorruptModelFileError(f"{src.name}: GGUF tensor {tname!r} lies outside the file (truncated)")
        entries[tname] = _Entry(src, type_name, tuple(reversed([int(d) for d in dims])), data_start + offset, True)
    return entries, meta


# ---- roles: architecture-independent tensor names ---------------------------------------------------------------------
_ROLE_RE = re.compile(r"^(?:blk\.(\d+)\.)?([a-z_]+)$")
_CONV1D_MODEL_TYPES = {"gpt2"}  # HF Conv1D stores (in, out): its rows are not GGUF's rows


def _arch_candidates(config: dict) -> list[str]:
    text = config.get("text_config") if isinstance(config.get("text_config"), dict) else {}
    names = [config.get("model_type"), text.get("model_type")]
    out = []
    for name in names:
        if isinstance(name, str) and name:
            out += [name, name.removesuffix("_text"), name.replace("_", "")]
    return out


@lru_cache(maxsize=32)
def _name_map(model_type: str | None, n_blocks: int):
    import gguf

    arch_of = {name: arch for arch, name in gguf.MODEL_ARCH_NAMES.items()}
    arch = arch_of.get(model_type or "", gguf.MODEL_ARCH.LLAMA)
    return gguf.get_tensor_name_map(arch, n_blocks)


def _hf_roles(entries: dict[str, _Entry], config: dict) -> tuple[dict[str, _Entry], str | None]:
    """Map safetensors tensor names to GGUF role names (``blk.N.ffn_down``) with gguf-py's TensorNameMap."""
    import gguf

    arch_of = {name: arch for arch, name in gguf.MODEL_ARCH_NAMES.items()}
    model_type = next((c for c in _arch_candidates(config) if c in arch_of), None)
    raw_type = config.get("model_type") if isinstance(config.get("model_type"), str) else None
    text = config.get("text_config") if isinstance(config.get("text_config"), dict) else {}
    declared = config.get("num_hidden_layers") or config.get("n_layer") or text.get("num_hidden_layers")
    numbers = [int(n) for key in entries for n in re.findall(r"(?:layers|h|blocks|layer)\.(\d+)\.", key)]
    n_blocks = min(max(int(declared) if isinstance(declared, int) else 0, max(numbers, default=-1) + 1, 1), 1024)
    tmap = _name_map(model_type, n_blocks)
    suffix = "@conv1d" if raw_type in _CONV1D_MODEL_TYPES else ""
    roles: dict[str, _Entry] = {}
    for key in sorted(entries):
        if not key.endswith(".weight"):
            continue
        mapped = tmap.get_name(key, try_suffixes=(".weight",))
        if not mapped:
            continue
        role = mapped.removesuffix(".weight")
        match = _ROLE_RE.match(role)
        if not match or match.group(2) not in (*MATRIX_ROLES, *NORM_ROLES, *GLOBAL_ROLES):
            continue
        if suffix and len(entries[key].shape) == 2 and match.group(2) in MATRIX_ROLES:
            role += suffix
        roles.setdefault(role, entries[key])
    return roles, model_type or raw_type


def _gguf_roles(entries: dict[str, _Entry]) -> dict[str, _Entry]:
    roles = {}
    for key, entry in entries.items():
        role = key.removesuffix(".weight")
        match = _ROLE_RE.match(role)
        if key.endswith(".weight") and match and match.group(2) in (*MATRIX_ROLES, *NORM_ROLES, *GLOBAL_ROLES):
            roles[role] = entry
    return roles


def _layers(n_layers: int, k: int = N_LAYERS) -> list[int]:
    """Up to `k` layer indices spread evenly over the depth (integer arithmetic: the same for equal depths)."""
    if n_layers <= k:
        return list(range(n_layers))
    return sorted({(i * (n_layers - 1) + (k - 1) // 2) // (k - 1) for i in range(k)})


def _select(roles: dict[str, _Entry]) -> tuple[dict[str, _Entry], int, list[int]]:
    blocks = [int(m.group(1)) for r in roles if (m := _ROLE_RE.match(r.split("@")[0])) and m.group(1)]
    n_layers = max(blocks, default=-1) + 1
    layers = _layers(n_layers)
    chosen = {}
    for role, entry in roles.items():
        match = _ROLE_RE.match(role.split("@")[0])
        if match.group(1) is None or int(match.group(1)) in layers:
            chosen[role] = entry
    return chosen, n_layers, layers


# ---- decoding a slice -------------------------------------------------------------------------------------------------
#: GGML types whose values lie on a uniform grid per sub-block: (sub-block length, how the step follows from the
#: block's dequantized values). The legacy types reconstruct their extreme value exactly, so the step is exact:
#: Q8_0 max|x|/127, Q4_0 max|x|/8, Q5_0 max|x|/16, Q4_1 range/15, Q5_1 range/31. K-quants optimise each sub-block's
#: scale, so their prior (range/(levels-1) or max|x|/(levels/2)) is refined by the grid the values actually lie on.
_LINEAR_GRIDS = {"Q8_0": (32, "amax", 127), "Q8_1": (32, "amax", 127), "Q4_0": (32, "amax", 8),
                 "Q5_0": (32, "amax", 16), "Q4_1": (32, "range", 15), "Q5_1": (32, "range", 31),
                 "Q2_K": (16, "range~", 3), "Q4_K": (32, "range~", 15), "Q5_K": (32, "range~", 31),
                 "Q3_K": (16, "amax~", 4), "Q6_K": (16, "amax~", 32), "Q8_K": (256, "amax", 127),
                 "TQ1_0": (256, "amax", 1), "TQ2_0": (256, "amax", 1)}
_FLOAT_GGML = {"F32": "F32", "F16": "F16", "BF16": "BF16", "F64": "F64"}


@dataclass
class _Plan:
    role: str
    entry: _Entry
    start: int
    rows: int
    cols: int
    reads: list[tuple[_Source, int, int]]   # (file, offset, length): one range for plain and GGML tensors
    blocks: tuple[int, ...] = ()            # bitsandbytes 4-bit: first element, first block, first nested block


def _rows(role: str, shape: tuple[int, ...]) -> tuple[int, int, int]:
    """(start row, rows, values per row) to read, from the shape alone."""
    if len(shape) == 1:
        return 0, 1, min(shape[0], MAX_VECTOR)
    n_rows, row_elems = shape
    start = EMBED_START if role.split("@")[0] in _VOCAB_ROLES and n_rows >= EMBED_START + MAX_ROWS else 0
    return start, min(n_rows - start, MAX_ROWS, max(1, -(-TARGET_VALUES // max(row_elems, 1)))), row_elems


def _plan(role: str, entry: _Entry) -> _Plan | str:
    """Which rows of a tensor to read (from its shape only), or why it is skipped."""
    import gguf

    shape = entry.shape
    if len(shape) not in (1, 2):
        return f"{len(shape)}-D tensor"
    if entry.dtype.startswith("BNB_"):
        return _plan_bnb(role, entry)
    kind = _FLOAT_GGML.get(entry.dtype) if entry.ggml else entry.dtype
    if entry.ggml and kind is None:
        try:
            block, type_size = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType[entry.dtype]]
        except KeyError:
            raise UnsupportedWeightsError(f"{entry.src.name}: tensor {role} has GGML type {entry.dtype}, "
                                          "which this sketch cannot decode") from None
    elif kind in _ST_FLOAT:
        block, type_size = 1, _ST_FLOAT[kind]
    else:
        return f"dtype {entry.dtype} is not decoded"
    start, rows, cols = _rows(role, shape)
    if len(shape) == 1:
        cols -= cols % block
    if cols <= 0 or rows <= 0 or shape[-1] % block:
        return "empty or not block-aligned"
    row_bytes = shape[-1] // block * type_size
    length = rows * row_bytes if len(shape) == 2 else cols // block * type_size
    return _Plan(role, entry, start, rows, cols, [(entry.src, entry.offset + start * row_bytes, length)])


# bitsandbytes checkpoints (transformers save_pretrained of a load_in_4bit / load_in_8bit model)
_BNB_4BIT = (".quant_state.bitsandbytes__nf4", ".quant_state.bitsandbytes__fp4")


def _bnb_entry(key: str, entries: dict[str, _Entry]) -> _Entry | None:
    """A bitsandbytes-quantized weight as one logical entry (its state JSON is read here), or None."""
    entry = entries[key]
    for suffix in _BNB_4BIT:
        if key + suffix in entries:
            state_entry = entries[key + suffix]
            raw = state_entry.src.read(state_entry.offset, math.prod(state_entry.shape))
            try:
                state = json.loads(raw.decode("utf-8"))
                shape = tuple(int(d) for d in state["shape"])
                int(state["blocksize"])
            except (UnicodeDecodeError, ValueError, KeyError, TypeError):
                raise CorruptModelFileError(f"{entry.src.name}: bitsandbytes state of {key} is malformed") from None
            parts = {p: entries[f"{key}.{p}"] for p in ("absmax", "quant_map", "nested_absmax", "nested_quant_map")
                     if f"{key}.{p}" in entries}
            if "absmax" not in parts or "quant_map" not in parts:
                raise CorruptModelFileError(f"{entry.src.name}: bitsandbytes tensor {key} lacks absmax/quant_map")
            kind = "BNB_NF4" if suffix.endswith("nf4") else "BNB_FP4"
            return _Entry(entry.src, kind, shape, entry.offset, parts=parts, state=state)
    scb = key.removesuffix("weight") + "SCB"
    if entry.dtype == "I8" and scb in entries and len(entry.shape) == 2:
        return _Entry(entry.src, "BNB_INT8", entry.shape, entry.offset, parts={"SCB": entries[scb]})
    return None


def _plan_bnb(role: str, entry: _Entry) -> _Plan | str:
    start, rows, cols = _rows(role, entry.shape)
    parts = entry.parts or {}
    if entry.dtype == "BNB_INT8":
        scb = parts["SCB"]
        return _Plan(role, entry, start, rows, cols, [(entry.src, entry.offset + start * cols, rows * cols),
                                                      (scb.src, scb.offset + start * 4, rows * 4)])
    block = int(entry.state["blocksize"])
    first, count = start * entry.shape[-1], rows * cols
    if len(entry.shape) == 1:
        count -= count % block
    if first % block or first % 2 or count <= 0 or count % 2:
        return "bitsandbytes blocks do not line up with the rows"
    b0, b1 = first // block, -(-(first + count) // block)
    absmax = parts["absmax"]
    width = 1 if absmax.dtype == "U8" else 4
    reads = [(entry.src, entry.offset + first // 2, count // 2),
             (absmax.src, absmax.offset + b0 * width, (b1 - b0) * width),
             (parts["quant_map"].src, parts["quant_map"].offset, 16 * 4)]
    n0 = 0
    if width == 1:
        if "nested_absmax" not in parts or "nested_quant_map" not in parts:
            return "bitsandbytes nested quantization state is missing"
        nested = int(entry.state.get("nested_blocksize") or 256)
        n0, n1 = b0 // nested, -(-b1 // nested)
        reads += [(parts["nested_absmax"].src, parts["nested_absmax"].offset + n0 * 4, (n1 - n0) * 4),
                  (parts["nested_quant_map"].src, parts["nested_quant_map"].offset, 256 * 4)]
    if rows and len(entry.shape) == 1:
        cols = count
    return _Plan(role, entry, start, rows, cols, reads, (first, b0, n0))


def _decode_bnb(plan: _Plan, raws: list[bytes]) -> tuple[np.ndarray, float, str]:
    entry = plan.entry
    if entry.dtype == "BNB_INT8":
        step = np.frombuffer(raws[1], "<f4").astype(np.float64)[:, None] / 127
        values = np.frombuffer(raws[0], np.int8).reshape(plan.rows, plan.cols) * step
        return values, float(np.mean(np.broadcast_to(step, values.shape) ** 2) / 12), "quantization"
    first, b0, n0 = plan.blocks
    block = int(entry.state["blocksize"])
    packed = np.frombuffer(raws[0], np.uint8)
    codes = np.stack([packed >> 4, packed & 15], axis=1).reshape(-1)  # high nibble first
    qmap = np.frombuffer(raws[2], "<f4").astype(np.float64)
    if len(raws) > 3:  # nested (double) quantization of absmax
        nested = int(entry.state.get("nested_blocksize") or 256)
        nmap = np.frombuffer(raws[4], "<f4").astype(np.float64)
        nabs = np.frombuffer(raws[3], "<f4").astype(np.float64)
        codes8 = np.frombuffer(raws[1], np.uint8)
        index = (b0 + np.arange(codes8.size)) // nested - n0
        absmax = nmap[codes8] * nabs[index] + float(entry.state.get("nested_offset") or 0.0)
    else:
        absmax = np.frombuffer(raws[1], "<f4").astype(np.float64)
    scale = absmax[(first + np.arange(codes.size)) // block - b0]
    values = qmap[codes] * scale
    levels = np.unique(qmap)
    gaps = np.diff(levels)
    width = np.empty(levels.size)
    width[1:-1] = (gaps[1:] + gaps[:-1]) / 2
    width[0], width[-1] = gaps[0] / 2 if gaps.size else 0.0, gaps[-1] / 2 if gaps.size else 0.0
    cell = width[np.searchsorted(levels, qmap)][codes] * scale
    return values.reshape(plan.rows, plan.cols), float(np.mean(cell ** 2) / 12), "approx"


def _bf16(raw: bytes) -> np.ndarray:
    return (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)


def _decode(plan: _Plan, raws: list[bytes]) -> tuple[np.ndarray, float, str]:
    """The slice as float64 (rows, cols), its storage noise (relative to its variance) and the noise kind."""
    import gguf

    dtype, raw = plan.entry.dtype, raws[0]
    kind = _FLOAT_GGML.get(dtype) if plan.entry.ggml else dtype
    name = f"{plan.entry.src.name}: tensor {plan.role}"
    if dtype.startswith("BNB_"):
        values, noise, noise_kind = _decode_bnb(plan, raws)
        if not np.all(np.isfinite(values)):
            raise CorruptModelFileError(f"{name} holds non-finite values (corrupt file)")
        var = float(values.var())
        return values, (noise / var if var > 0 else 0.0), noise_kind
    if kind == "F64":
        values = np.frombuffer(raw, dtype="<f8")
    elif kind == "F32":
        values = np.frombuffer(raw, dtype="<f4")
    elif kind == "F16":
        values = np.frombuffer(raw, dtype="<f2")
    elif kind == "BF16":
        values = _bf16(raw)
    else:
        qtype = gguf.GGMLQuantizationType[dtype]
        try:
            values = gguf.quants.dequantize(np.frombuffer(raw, dtype=np.uint8).reshape(plan.rows, -1), qtype)
        except NotImplementedError:
            raise UnsupportedWeightsError(f"{name} has GGML type {dtype}, which gguf-py cannot dequantize") from None
        except (ValueError, TypeError, AssertionError) as err:
            raise CorruptModelFileError(f"{name} cannot be decoded as {dtype} ({type(err).__name__})") from None
    values = np.asarray(values, dtype=np.float64).reshape(plan.rows, plan.cols)
    if not np.all(np.isfinite(values)):
        raise CorruptModelFileError(f"{name} holds non-finite values (corrupt file)")
    var = float(values.var())
    if var <= 0:
        return values, 0.0, "rounding"
    if kind in ("F16", "BF16"):
        _, exponent = np.frexp(np.abs(values[values != 0]))
        ulp = np.ldexp(1.0, exponent - (8 if kind == "BF16" else 11))
        if kind == "F16":
            ulp = np.maximum(ulp, 2.0 ** -24)
        return values, float(np.mean(ulp ** 2) * (values != 0).mean() / 12 / var), "rounding"
    if kind in ("F32", "F64"):
        return values, 0.0, "rounding"
    return values, _quant_noise(values, dtype) / var, "quantization" if dtype in _LINEAR_GRIDS else "approx"


#: types with at most 16 levels per block: their own grid is what `_hidden_grid_noise` would find
_COARSE = {"Q4_0", "Q4_1", "Q4_K", "Q3_K", "Q2_K", "TQ1_0", "TQ2_0", "IQ4_NL", "IQ4_XS", "IQ3_XXS", "IQ3_S", "IQ2_XXS",
           "IQ2_XS", "IQ2_S", "IQ1_S", "IQ1_M", "MXFP4", "NVFP4", "Q1_0", "BNB_NF4", "BNB_FP4"}


def _hidden_grid_noise(values: np.ndarray) -> float:
    """Quantization noise hidden in a float tensor that was dequantized from a 4-bit (or coarser) format.

    Dequantized Q4_x / K-quant / nf4 weights keep at most 16 distinct values per 32-value block, where trained float
    weights have ~32; then the step is taken as range/15 per block, as for Q4_1. 0.0 when there is no such grid (or
    the tensor is mostly zeros, e.g. pruned).
    """
    flat = values.reshape(-1)
    if flat.size < 32 or flat.size % 32 or np.mean(flat == 0) > 0.2:
        return 0.0
    blocks = np.sort(flat.reshape(-1, 32), axis=1)
    amax = np.abs(blocks).max(axis=1, keepdims=True)
    distinct = 1 + (np.diff(blocks, axis=1) > 1e-6 * np.maximum(amax, 1e-30)).sum(axis=1)
    if np.median(distinct) > 16:
        return 0.0
    return float(np.mean(((blocks[:, -1] - blocks[:, 0]) / 15) ** 2) / 12)


def _quant_noise(values: np.ndarray, dtype: str) -> float:
    """Mean squared quantization error implied by each block's grid step (step^2 / 12), from dequantized values.

    Linear types: the step per sub-block from `_LINEAR_GRIDS`; for the K-quants the prior is replaced by the largest
    s within 0.75-1.35x of it such that every gap between the sorted values is a whole multiple of s (tried as the
    smallest gap / 1..8). Non-linear codebooks (IQ*, MXFP4): the mean squared gap between neighbouring values in a
    32-value block (an approximation).
    """
    sub, rule, divisor = _LINEAR_GRIDS.get(dtype, (32, None, 0))
    flat = values.reshape(-1)
    if flat.size % sub:
        sub = math.gcd(flat.size, sub) or 1
    blocks = np.sort(flat.reshape(-1, sub), axis=1)
    span = blocks[:, -1] - blocks[:, 0]
    amax = np.maximum(np.abs(blocks[:, 0]), np.abs(blocks[:, -1]))
    if rule in ("amax", "range"):
        step = (amax if rule == "amax" else span) / divisor
        return float(np.mean(step ** 2) / 12)
    gaps = np.diff(blocks, axis=1)
    positive = gaps > 1e-5 * np.maximum(amax, 1e-30)[:, None]
    if rule is None:
        squared = np.where(positive, gaps, 0.0) ** 2
        counts = np.maximum(positive.sum(axis=1), 1)
        return float(np.mean(squared.sum(axis=1) / counts) / 12)
    prior = (span if rule == "range~" else amax) / divisor
    smallest = np.where(positive, gaps, np.inf).min(axis=1)
    step = prior.copy()
    found = ~np.isfinite(smallest)  # constant blocks: keep the prior
    for d in range(1, 9):
        candidate = smallest / d
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = gaps / candidate[:, None]
            plausible = (candidate >= 0.75 * prior) & (candidate <= 1.35 * prior)
        ok = np.all(~positive | (np.abs(ratio - np.round(ratio)) < 0.02), axis=1) & plausible & ~found
        step[ok] = candidate[ok]
        found |= ok
    return float(np.mean(step ** 2) / 12)


@lru_cache(maxsize=64)
def _projection(n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng([SEED, n])
    return rng.integers(0, DIM, n), rng.integers(0, 2, n).astype(np.float64) * 2 - 1


def _sketch_values(values: np.ndarray) -> np.ndarray:
    flat = values.reshape(-1)
    buckets, signs = _projection(flat.size)
    return np.bincount(buckets, weights=signs * (flat - flat.mean()), minlength=DIM)


def _encode(vector: np.ndarray) -> tuple[str, float]:
    scale = float(np.abs(vector).max())
    half = (vector / scale).astype("<f2") if scale > 0 else np.zeros(DIM, "<f2")
    return base64.b64encode(half.tobytes()).decode("ascii"), scale


def decode_values(entry: dict) -> np.ndarray | None:
    """A sketch tensor's projected values (float64, length DIM), or None for a constant tensor."""
    if entry.get("values") is None:
        return None
    return np.frombuffer(base64.b64decode(entry["values"]), dtype="<f2").astype(np.float64) * float(entry["scale"])


# ---- the sketch -------------------------------------------------------------------------------------------------------
_SHARD_RE = re.compile(r"-(\d{5})-of-(\d{5})\.gguf$")


def _choose_files(files: dict[str, int | None], read_json: Callable[[str], dict | None]) -> tuple[str | None, list[str]]:
    """Which weight files to read: safetensors (the index's shards, else every top-level file) before GGUF."""
    top = sorted(f for f in files if "/" not in f)
    index = read_json("model.safetensors.index.json") if "model.safetensors.index.json" in files else None
    if isinstance(index, dict) and isinstance(index.get("weight_map"), dict):
        shards = sorted({str(v) for v in index["weight_map"].values()} & set(files))
        if shards:
            return "safetensors", shards
    tensors = [f for f in top if f.endswith(".safetensors")]
    if tensors:
        return "safetensors", tensors
    ggufs = [f for f in sorted(files) if f.endswith(".gguf") and "mmproj" not in f.rsplit("/", 1)[-1].lower()]
    if not ggufs:
        return None, []
    top_ggufs = [f for f in ggufs if "/" not in f] or ggufs
    best = max(top_ggufs, key=lambda f: (files.get(f) or 0, f))  # the largest: the least quantization noise
    match = _SHARD_RE.search(best)
    if match:
        stem = best[:match.start()]
        return "gguf", sorted(f for f in ggufs if f.startswith(stem) and _SHARD_RE.search(f))
    return "gguf", [best]


def _build(files: dict[str, int | None], open_file: Callable[[str], _Source], counter: _Counter,
           parallel: int = 1) -> dict | None:
    def read_json(name: str) -> dict | None:
        src = open_file(name)
        try:
            data = json.loads(src.read(0, src.size).decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    kind, chosen = _choose_files(files, read_json)
    if kind is None:
        return None
    if kind == "safetensors":
        entries: dict[str, _Entry] = {}
        for name in chosen:
            entries.update(_safetensors_entries(open_file(name)))
        config = (read_json("config.json") if "config.json" in files else None) or {}
        roles, arch = _hf_roles(entries, config)
    else:
        entries, meta = {}, {}
        for name in chosen:
            found, found_meta = _gguf_entries(open_file(name))
            entries.update(found)
            meta = meta or found_meta
        roles, arch = _gguf_roles(entries), meta.get("general.architecture")
    selected, n_layers, layers = _select(roles)
    if kind == "safetensors":
        for role, entry in list(selected.items()):
            key = next((k for k, e in entries.items() if e is entry), None)
            bnb = _bnb_entry(key, entries) if key is not None else None
            if bnb is not None:
                selected[role] = bnb
    plans, skipped = [], {}
    for role in sorted(selected):
        plan = _plan(role, selected[role])
        if isinstance(plan, str):
            skipped[role] = plan
        else:
            plans.append(plan)

    def fetch(plan: _Plan) -> list[bytes]:
        return [src.read(offset, length) for src, offset, length in plan.reads]

    if parallel > 1 and len(plans) > 1:
        with ThreadPoolExecutor(max_workers=parallel) as pool:
            raws = list(pool.map(fetch, plans))
    else:
        raws = [fetch(plan) for plan in plans]
    tensors = {}
    for plan, raw in zip(plans, raws):
        values, noise, noise_kind = _decode(plan, raw)
        entry: dict[str, Any] = {"shape": list(plan.entry.shape), "dtype": plan.entry.dtype,
                                 "rows": [plan.start, plan.rows], "n_values": int(values.size)}
        std = float(values.std())
        if std <= 1e-7 * (abs(float(values.mean())) + 1e-30) or std == 0.0:
            entry.update(constant=True, values=None, scale=0.0)
        else:
            encoded, scale = _encode(_sketch_values(values))
            entry.update(constant=False, values=encoded, scale=scale)
        entry.update(noise=noise, noise_kind=noise_kind)
        if not entry["constant"] and len(plan.entry.shape) == 2 and plan.entry.dtype not in _COARSE:
            hidden = _hidden_grid_noise(values)
            if hidden > 0:  # a dequantized re-upload: the quantization it went through, beside its rounding
                entry["grid_noise"] = hidden / float(values.var())
        tensors[plan.role] = entry
    return {"scheme": SCHEME, "version": VERSION, "format": kind, "architecture": arch,
            "projection": {"kind": "count-sketch", "dim": DIM, "seed": SEED, "target_values": TARGET_VALUES,
                           "max_rows": MAX_ROWS, "embed_start": EMBED_START},
            "n_layers": n_layers, "layers": layers, "files": {f: files.get(f) for f in chosen},
            "bytes_total": int(sum(files.get(f) or 0 for f in chosen)), "bytes_read": counter.bytes,
            "read_requests": counter.requests, "tensors": tensors, "skipped": skipped}


def sketch_files(path: str | os.PathLike) -> dict | None:
    """The weight sketch of a local model: a dir with safetensors (single, sharded with an index, or any
    ``*.safetensors``) or GGUF, or a ``.gguf`` file. None when there is no safetensors/GGUF (pickle-only models:
    nothing is unpickled). Raises `CorruptModelFileError` / `UnsupportedWeightsError`."""
    from ..errors import InvalidInputError

    path = Path(path)
    counter = _Counter()
    if path.is_file():
        if path.suffix != ".gguf" and path.suffix != ".safetensors":
            return None
        root, files = path.parent, {path.name: path.stat().st_size}
        if path.suffix == ".safetensors" and (root / "config.json").is_file():  # the architecture, for the names
            files["config.json"] = (root / "config.json").stat().st_size
    elif path.is_dir():
        root = path
        files = {str(p.relative_to(path)): p.stat().st_size for p in path.rglob("*")
                 if p.is_file() and p.suffix in (".safetensors", ".gguf", ".json")}
        files = {k: v for k, v in files.items() if k.endswith((".safetensors", ".gguf")) or "/" not in k}
    else:
        raise InvalidInputError(f"no such model path: {path}")
    return _build(files, lambda name: _local_source(root / name, name, counter), counter)


def sketch_hub(repo_id: str, revision: str | None = None, token: str | bool | None = None,
               parallel: int = 8) -> dict | None:
    """The same sketch as `sketch_files`, from a Hub model repo by byte-range reads (headers and the chosen rows
    only; nothing is downloaded into the cache). Raises the `HubError` family (`GatedRepoError`, ...) for Hub
    failures and `CorruptModelFileError` for malformed files."""
    from .. import hub

    sha, sizes = hub.repo_file_sizes(repo_id, revision=revision, token=token)
    counter = _Counter()
    files = {f: s for f, s in sizes.items() if f.endswith((".safetensors", ".gguf")) or
             (f.endswith(".json") and "/" not in f)}

    def open_file(name: str) -> _Source:
        size = files.get(name)
        if size is None:
            size = hub.file_size(repo_id, name, revision=sha, token=token)

        def reader(offset: int, length: int) -> bytes:
            return hub.read_file_range(repo_id, name, offset, length, revision=sha, token=token)

        return _Source(name, size, reader, counter)

    sketch = _build(files, open_file, counter, parallel=parallel)
    if sketch is not None:
        sketch.update(repo_id=repo_id, revision=sha)
    return sketch


# ---- comparison -------------------------------------------------------------------------------------------------------
def _comparable(role: str, a: dict, b: dict) -> bool:
    if role.split("@")[0] in _VOCAB_ROLES and len(a["shape"]) == 2 == len(b["shape"]):
        return a["shape"][1] == b["shape"][1] and a["rows"] == b["rows"]  # an extended vocab still lines up
    return a["shape"] == b["shape"] and a["rows"] == b["rows"] and a.get("n_values") == b.get("n_values")


def _per_tensor(a: dict, b: dict) -> tuple[dict[str, dict], str]:
    """Per-tensor comparison of two sketches, and why there is none ("" when there is)."""
    for sketch in (a, b):
        if not isinstance(sketch, dict) or sketch.get("scheme") != SCHEME:
            return {}, "no weight evidence: not a weight sketch"
    if (a.get("version"), a.get("projection")) != (b.get("version"), b.get("projection")):
        return {}, "no weight evidence: sketches were made with different settings (version/projection)"
    ta, tb = a.get("tensors") or {}, b.get("tensors") or {}
    if not ta or not tb:
        return {}, "no weight evidence: a sketch holds no decodable tensor"
    per_tensor = {}
    shared_shape = False
    for role in sorted(set(ta) & set(tb)):
        ea, eb = ta[role], tb[role]
        if not _comparable(role, ea, eb):
            continue
        shared_shape = True
        va, vb = decode_values(ea), decode_values(eb)
        if va is None or vb is None:  # a constant tensor (e.g. all-ones norms at init): no information
            continue
        na, nb = float(np.linalg.norm(va)), float(np.linalg.norm(vb))
        r = float(np.dot(va, vb) / (na * nb)) if na > 0 and nb > 0 else 0.0
        distance = max(0.0, 2.0 * (1.0 - r))
        rounding = sum(float(e.get("noise") or 0) for e in (ea, eb) if e.get("noise_kind") == "rounding")
        # quantization noise components: each side's own (GGUF, bitsandbytes) and the grid hidden in its values
        # (a dequantized or re-quantized copy). The pair is "quantized" if D fits some of them: one side made from
        # the other's values carries only its own; both made from a common source carry both sides'.
        components = [float(e.get(k) or 0) for e in (ea, eb) for k in ("noise", "grid_noise")
                      if k == "grid_noise" or e.get("noise_kind") != "rounding"]
        components = [c for c in components if c > 0]
        hypotheses = sorted({sum(c) for n in range(1, len(components) + 1)
                             for c in itertools.combinations(components, n)})
        ratios = [distance / (q + rounding) for q in hypotheses]
        ratio = min(ratios, key=lambda x: abs(math.log(x)) if x > 0 else math.inf) if ratios else None
        if distance <= K_SAME * rounding + D_FLOOR:
            status = "same"
        elif ratio is not None and Q_LO <= ratio <= Q_HI:
            status = "quantized"
        else:
            status = "differs"
        quant = sum(components)
        per_tensor[role] = {"similarity": r, "distance": distance, "noise_rounding": rounding,
                            "noise_quantization": quant, "noise_ratio": ratio, "status": status}
    if not per_tensor:
        return {}, ("no weight evidence: shapes differ" if not shared_shape
                    else "no weight evidence: the tensors in common are constant")
    return per_tensor, ""


def pair_features(a: dict, b: dict) -> np.ndarray | None:
    """The statistics the fitted calibration reads (`weight_calibration.FEATURES`) for two sketches, or None when
    they give no evidence (different shapes, fewer than `MIN_TENSORS` comparable tensors, ...)."""
    from .weight_calibration import features

    per_tensor, _ = _per_tensor(a, b)
    if len(per_tensor) < MIN_TENSORS:
        return None
    return features(t["similarity"] for t in per_tensor.values())


def compare_sketches(a: dict, b: dict, calibration: dict | None = None) -> dict:
    """How close two models' weights are, from their sketches.

    Returns ``similarity`` (median Pearson r over the tensors compared, the raw per-pair number), ``p_related``
    (P(related) from the fitted calibration, `hf_dna.evidence.weight_calibration`; `calibration` overrides the
    packaged one), ``relation`` (``near-identical`` / ``close`` / ``unrelated``, or None without evidence: related
    when P(related) reaches the fitted decision point ``p_decision``), ``tensors_compared``, ``within_noise`` (share of
    tensors equal within storage or quantization noise), ``distance`` (median D), ``per_tensor`` ({role: {similarity,
    distance, noise_rounding, noise_quantization, status}}) and a one-line ``note``. Different shapes give
    ``similarity=None`` and "no weight evidence: shapes differ"; fewer than `MIN_TENSORS` comparable tensors give
    ``relation=None`` ("no weight evidence: only N tensors ..."), never "unrelated".
    """
    from . import weight_calibration as C

    result: dict[str, Any] = {"similarity": None, "relation": None, "p_related": None, "p_decision": None,
                              "tensors_compared": 0, "within_noise": None, "distance": None, "per_tensor": {},
                              "note": ""}
    per_tensor, why = _per_tensor(a, b)
    if not per_tensor:
        result["note"] = why
        return result
    sims = np.array([t["similarity"] for t in per_tensor.values()])
    statuses = [t["status"] for t in per_tensor.values()]
    n = len(per_tensor)
    within = sum(s != "differs" for s in statuses) / n
    similarity = float(np.median(sims))
    result.update(similarity=similarity, tensors_compared=n, within_noise=within,
                  distance=float(np.median([t["distance"] for t in per_tensor.values()])), per_tensor=per_tensor)
    if n < MIN_TENSORS:  # a tensor or two of equal shape decide nothing either way
        result["note"] = (f"no weight evidence: only {n} tensor{'s' if n > 1 else ''} of the same shape compared "
                          f"(median r={similarity:.3f}; {MIN_TENSORS} needed)")
        return result
    cal = calibration if calibration is not None else C.packaged()
    score = C.logit(cal, C.features(sims))
    p_related = float(C._sigmoid(score))
    result.update(p_related=p_related, p_decision=float(cal["decision"]["p"]))
    differing = n - round(within * n)
    if score < cal["decision"]["logit"]:
        result["relation"] = "unrelated"
        note = f"weights uncorrelated (median r={similarity:.3f} over {n} tensors, P(related)={p_related:.3g})"
    elif within >= WITHIN_NOISE_MIN:
        result["relation"] = "near-identical"
        kind = ("quantization" if statuses.count("quantized") > statuses.count("same")
                else "storage precision")
        note = (f"the same weights within {kind} noise in {n - differing} of {n} tensors (median r={similarity:.4f}):"
                " re-upload, dtype cast, re-shard or quantization")
    else:
        result["relation"] = "close"
        note = (f"weights correlate (median r={similarity:.4f}) but {differing} of {n} tensors differ beyond "
                "storage/quantization noise: fine-tune, merge or merged adapter")
    result["note"] = note
    return result


def sketch_size(sketch: dict) -> int:
    """Bytes of the sketch as compact JSON."""
    return len(json.dumps(sketch, separators=(",", ":")).encode("utf-8"))


def weight_evidence(path: str | os.PathLike) -> dict | None:
    """What a record carries as ``evidence["weights"]``: the sketch of the model files at `path`, a sketch that
    says why it is unavailable (an unsupported tensor type, a corrupt file: one line), or None (no safetensors or
    GGUF, e.g. pickle-only weights, which are never unpickled)."""
    try:
        return sketch_files(path)
    except CorruptModelFileError as err:
        return {"scheme": SCHEME, "version": VERSION, "tensors": {}, "unavailable": str(err)}
