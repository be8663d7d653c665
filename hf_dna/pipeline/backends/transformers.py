"""The transformers backend: a local dir, a Hub repo (safetensors or one GGUF file) or a ``.gguf`` path, loaded
as a causal LM that answers probes in left-padded batches.

Responses are decoded without the prompt, special tokens skipped, cut at the first end-of-sequence token;
greedy by default, or the paper's seeded sampling.
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ... import hub
from ...errors import (
    CorruptModelFileError,
    HfDnaError,
    InvalidInputError,
    ModelLoadError,
    ModelNotFoundError,
    NotACausalLMError,
    OutOfMemoryError,
    RemoteCodeNotAllowedError,
    first_line,
)
from ..device import GPU_FREE_SHARE, auto_batch_size, resolve_device, resolve_dtype
from ..responses import GenerationSettings
from . import decode

#: prompt tokens a GPU batch size is planned for (paper600's longest probe is 70 SmolLM2 tokens)
LONG_PROMPT = 256
BACKEND = "transformers"
#: files fetched from the Hub for a model: configs, tokenizer and safetensors weights (never pickles)
HUB_PATTERNS = ["*.json", "*.safetensors", "tokenizer*", "*.model", "*.tiktoken", "*.txt", "*.jinja"]
_HUB_ID = re.compile(r"^[\w.-]+(/[\w.-]+)?$")


@dataclass
class ModelSource:
    """Where a model's files are on disk, and what to call it."""

    model_id: str
    path: Path  # directory holding config/tokenizer/weights
    revision: str  # Hub commit sha, or "local"
    gguf_file: str | None = None
    fingerprint: str = ""  # cache identity: the sha for Hub repos, a hash of file names/sizes/mtimes locally


def resolve_source(model: str, revision: str | None = None, token: str | None = None,
                   gguf_file: str | None = None) -> ModelSource:
    """Local directory, ``.gguf`` file, or Hub repo id (downloaded via `hf_dna.hub.snapshot`)."""
    path = Path(model).expanduser()
    if path.is_file():
        if path.suffix != ".gguf":
            raise InvalidInputError(f"{model} is a file but not a .gguf model file")
        return _local_source(path.parent, path.name, path.stem)
    if path.is_dir():
        return _local_source(path, gguf_file, path.resolve().name)
    if not _HUB_ID.match(model) or model.startswith((".", "~")) or model.endswith(".gguf"):
        raise ModelNotFoundError(f"no such model path: {model}")
    patterns = HUB_PATTERNS + ([gguf_file] if gguf_file else [])
    local_dir, sha = hub.snapshot(model, revision=revision, token=token, allow_patterns=patterns)
    return ModelSource(model, Path(local_dir), sha, gguf_file, sha)


def file_metadata(source: ModelSource) -> hub.ModelMetadata | None:
    """The metadata read from the model's files on disk (None when unreadable)."""
    return local_metadata_or_none(source.path / source.gguf_file if source.gguf_file else source.path)


def local_metadata_or_none(path: str | Path) -> hub.ModelMetadata | None:
    """`hub.local_metadata` of a local model dir or file, None when its files cannot be read."""
    try:
        return hub.local_metadata(path)
    except (HfDnaError, OSError, ValueError):
        return None


def _local_source(directory: Path, gguf_file: str | None, model_id: str) -> ModelSource:
    if gguf_file is None and not (directory / "config.json").is_file():
        ggufs = sorted(p.name for p in directory.glob("*.gguf"))
        if len(ggufs) != 1:
            what = "several .gguf files: pass --gguf-file" if ggufs else "no config.json and no .gguf file"
            raise ModelLoadError(f"{directory} is not a model directory ({what})")
        gguf_file = ggufs[0]
    if gguf_file and not (directory / gguf_file).is_file():
        raise ModelNotFoundError(f"no such GGUF file: {directory / gguf_file}")
    digest = hashlib.sha256()
    for file in sorted(directory.iterdir()):
        if file.is_file() and (file.suffix != ".gguf" or file.name == gguf_file):
            stat = file.stat()
            digest.update(f"{file.name}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return ModelSource(model_id, directory, "local", gguf_file, "local-" + digest.hexdigest()[:16])


# ----------------------------------------------------------------------------------------------- loading
def gguf_sidecar(source: ModelSource) -> Path | None:
    """Where the config and tokenizer read from a GGUF file are kept after its first load (None for other models):
    reading them means parsing the file's metadata (SmolLM2-135M's 49k-token vocabulary and merges: ~3 s of every
    run, profiled), while the saved copy loads in ~0.2 s. Kept in the response cache's folder (``gguf-metadata/``
    under ``$HF_DNA_CACHE`` or ``$HF_HOME/hf-dna/responses``), keyed by the file's identity (Hub commit, or local
    path, size and mtime) and the transformers version, so a changed file or converter is read afresh."""
    if not source.gguf_file or not source.fingerprint:
        return None
    import transformers

    from ..cache import default_cache_dir

    where = source.fingerprint if source.revision != "local" else f"{source.path.resolve()}\0{source.fingerprint}"
    key = hashlib.sha256(f"{where}\0{source.gguf_file}\0{transformers.__version__}".encode()).hexdigest()[:32]
    return default_cache_dir() / "gguf-metadata" / key


def _load_sidecar(directory: Path) -> tuple[Any, Any] | None:
    if not (directory / "config.json").is_file():
        return None
    from transformers import AutoConfig, AutoTokenizer

    try:
        return AutoConfig.from_pretrained(directory), AutoTokenizer.from_pretrained(directory)
    except Exception:  # a damaged copy: read the GGUF file again (and save it anew)
        return None


def _save_sidecar(directory: Path, config: Any, tokenizer: Any) -> None:
    """Save atomically (a temporary dir renamed into place); a home that cannot be written is not an error."""
    import os
    import shutil

    tmp = directory.with_name(f"{directory.name}.tmp-{os.getpid()}")
    try:
        config.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        if directory.exists():
            shutil.rmtree(directory)
        os.replace(tmp, directory)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)


def check_config(source: ModelSource, trust_remote_code: bool) -> Any:
    """Load the model config, refusing remote code (unless trusted), non-causal-LMs and corrupt GGUF files."""
    from transformers import AutoConfig

    if source.gguf_file:
        _check_gguf(source.path / source.gguf_file)
    else:
        raw = _read_json(source.path / "config.json")
        if raw.get("auto_map") and not trust_remote_code:
            raise RemoteCodeNotAllowedError(
                f"{source.model_id} ships custom code (auto_map in config.json); pass --trust-remote-code to run it")
    try:
        config = AutoConfig.from_pretrained(source.path, gguf_file=source.gguf_file, trust_remote_code=trust_remote_code)
    except Exception as err:
        if "trust_remote_code" in str(err):
            raise RemoteCodeNotAllowedError(f"{source.model_id} needs custom code; pass --trust-remote-code") from None
        raise ModelLoadError(f"cannot read the config of {source.model_id}: {first_line(err)}") from None
    _check_causal(config, source.model_id)
    return config


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ModelLoadError(f"cannot read {path}: {first_line(err)}") from None
    if not isinstance(data, dict):
        raise ModelLoadError(f"{path} is not a JSON object")
    return data


def _check_gguf(path: Path) -> None:
    try:
        import gguf

        gguf.GGUFReader(str(path))
    except Exception as err:  # the reader raises ValueError/struct/mmap errors on truncated or foreign files
        raise CorruptModelFileError(f"{path.name} is not a readable GGUF file ({first_line(err)})") from None


def _check_causal(config: Any, model_id: str) -> None:
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES as CAUSAL

    names = {n for v in CAUSAL.values() for n in ((v,) if isinstance(v, str) else v)}
    archs = getattr(config, "architectures", None) or []
    if archs:
        ok = any(a in names for a in archs)
    else:
        ok = config.model_type in CAUSAL and not getattr(config, "is_encoder_decoder", False)
    if not ok:
        kind = ", ".join(archs) or config.model_type
        raise NotACausalLMError(f"{model_id} is not a causal language model ({kind}); hf-dna needs a text generator")


#: how continuations become responses; part of the cache key, so a change never serves stale text
DECODING = "until-eos,skip-special,strip"


class TransformersGenerator:
    """A causal LM and its tokenizer, loaded lazily: the tokenizer first (enough to plan and to hit the cache)."""

    def __init__(self, source: ModelSource, settings: GenerationSettings):
        self.source = source
        self.settings = settings
        self.config, self.tokenizer = self._config_and_tokenizer()
        self.device = resolve_device(settings.device)
        self.dtype = resolve_dtype(settings.dtype, self.device)
        self.use_chat_template = self._chat_template_choice()
        self.batch_size = settings.batch_size or self._auto_batch_size()
        self._model = None

    def _auto_batch_size(self) -> int:
        """`auto_batch_size` for this model: on a GPU from its memory, the weights' size and the KV cache of a
        row (a prompt of `LONG_PROMPT` tokens plus `max_new_tokens`)."""
        if self.device == "cpu":
            return auto_batch_size("cpu")
        import torch

        free, memory = torch.cuda.mem_get_info(torch.device(self.device))
        row = _cache_bytes_per_token(self.config, self.dtype) * (LONG_PROMPT + self.settings.max_new_tokens)
        return auto_batch_size(self.device, gpu_memory=memory, weight_bytes=self.weight_bytes or 0,
                               cache_bytes_per_row=row, free_memory=free)

    @functools.cached_property
    def weight_bytes(self) -> int | None:
        """The weights' size in the dtype used (`_parameter_bytes`), counted once for the batch size and the
        device map."""
        return _parameter_bytes(self.config, self.dtype)

    def _config_and_tokenizer(self) -> tuple[Any, Any]:
        """The config and tokenizer; for a GGUF file from its saved copy after the first load (`gguf_sidecar`)."""
        sidecar = gguf_sidecar(self.source)
        saved = _load_sidecar(sidecar) if sidecar is not None else None
        if saved is not None:
            _check_causal(saved[0], self.source.model_id)
            return saved
        with gguf_loading() if self.source.gguf_file else contextlib.nullcontext():  # the GGUF header parsed once
            config = check_config(self.source, self.settings.trust_remote_code)
            tokenizer = self._load_tokenizer()
        if sidecar is not None:
            _save_sidecar(sidecar, config, tokenizer)
        return config, tokenizer

    def _load_tokenizer(self) -> Any:
        from transformers import AutoTokenizer

        try:
            return AutoTokenizer.from_pretrained(self.source.path, gguf_file=self.source.gguf_file,
                                                 trust_remote_code=self.settings.trust_remote_code)
        except Exception as err:
            raise ModelLoadError(f"cannot load the tokenizer of {self.source.model_id}: {first_line(err)}") from None

    def _chat_template_choice(self) -> bool:
        has = bool(getattr(self.tokenizer, "chat_template", None))
        if self.settings.chat_template == "on" and not has:
            raise InvalidInputError(f"{self.source.model_id} has no chat template (use --chat-template auto or off)")
        return has and self.settings.chat_template != "off"

    def generation_info(self) -> dict[str, Any]:
        """The settings as stored in records and cache keys, with auto values resolved."""
        info = self.settings.to_dict()
        info.update(backend=BACKEND, batch_size=self.batch_size, dtype=self.dtype, device=self.device.split(":")[0],
                    chat_template_used=self.use_chat_template, decoding=self.decoding)
        return info

    @functools.cached_property
    def own_decoding(self) -> bool:
        """Whether hf-dna's decoding loop (`decode.decode`: finished rows leave the batch, shared sampling noise)
        runs this model, decided from its class before the weights load; custom-code models use `generate()`."""
        from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING

        if getattr(self.config, "auto_map", None):
            return False
        try:
            return decode.supports(MODEL_FOR_CAUSAL_LM_MAPPING[type(self.config)])
        except (KeyError, ValueError, TypeError):
            return False

    @property
    def decoding(self) -> str:
        """How continuations become responses (in the cache key and the record): sampled rows drawn by hf-dna's
        loop share their noise per prompt and token (`decode`), so they differ from `generate()`'s batch-seeded
        ones; greedy tokens are the same."""
        return DECODING + (",coupled-top50-nucleus" if self.settings.sampling and self.own_decoding else "")

    def prompt_ids(self, prompts: list[str] | tuple[str, ...]) -> list[list[int]]:
        """Token ids of each prompt, through the chat template when one is used."""
        tok = self.tokenizer
        if self.use_chat_template:
            texts = [tok.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True,
                                             tokenize=False) for p in prompts]
            ids = [tok(t, add_special_tokens=False)["input_ids"] for t in texts]
        else:
            ids = [tok(p)["input_ids"] for p in prompts]
        start = tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id
        return [self._fit(seq) if seq else [start if start is not None else 0] for seq in ids]

    @property
    def context_length(self) -> int | None:
        for name in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
            value = getattr(self.config, name, None) or getattr(getattr(self.config, "text_config", None), name, None)
            if isinstance(value, int) and value > 0:
                return value
        return None

    def _fit(self, ids: list[int]) -> list[int]:
        """Cut a prompt that would not leave room for `max_new_tokens` in the model's context: keep its start
        (as llm-dna does) and, through a chat template, also its last 32 tokens (the assistant header)."""
        limit = self.context_length
        if limit is None or len(ids) + self.settings.max_new_tokens <= limit:
            return ids
        room = max(1, limit - self.settings.max_new_tokens)
        tail = min(32, room // 4) if self.use_chat_template else 0
        return ids[:room - tail] + (ids[-tail:] if tail else [])

    @property
    def model(self) -> Any:
        if self._model is None:
            self._model = self._load_model()
        return self._model

    def release(self) -> None:
        """Free the model's memory now (before the sentence encoder loads), and hand freed heap pages back to the
        OS: without this an LM caught in a reference cycle lived on until the next garbage collection and the
        encoder's peak came on top of it. The full collection (~0.1 s) runs only when dropping the reference did
        not free the model. Reloaded on next use."""
        import gc
        import weakref

        if self._model is None:
            return
        alive = weakref.ref(self._model)
        self._model = None
        if alive() is not None:
            gc.collect()
        _trim_heap()

    def _load_model(self) -> Any:
        import torch
        from transformers import AutoModelForCausalLM

        kwargs: dict[str, Any] = {"dtype": getattr(torch, self.dtype),
                                  "trust_remote_code": self.settings.trust_remote_code}
        if self.source.gguf_file:
            kwargs["gguf_file"] = self.source.gguf_file
        if self.settings.load_in:
            kwargs["quantization_config"] = _bitsandbytes_config(self.settings.load_in, self.device)
        if self.device != "cpu":
            kwargs["device_map"] = _device_map(self.weight_bytes, self.device)
        try:
            with gguf_loading() if self.source.gguf_file else contextlib.nullcontext():
                model = AutoModelForCausalLM.from_pretrained(self.source.path, **kwargs)
        except (torch.OutOfMemoryError, MemoryError):
            raise OutOfMemoryError(f"out of memory loading {self.source.model_id} on {self.device}") from None
        except Exception as err:
            error = CorruptModelFileError if "safetensor" in str(err).lower() else ModelLoadError
            raise error(f"cannot load {self.source.model_id}: {first_line(err)}") from None
        return model.eval()

    def _eos_ids(self) -> list[int]:
        ids: set[int] = set()
        for value in (getattr(self.model.generation_config, "eos_token_id", None), self.tokenizer.eos_token_id):
            if value is not None:
                ids.update(value if isinstance(value, list) else [value])
        return sorted(ids)

    def generate_batch(self, ids: list[list[int]], batch_no: int) -> list[str]:
        """Left-pad one batch, generate, return the decoded continuations (no prompt, no special tokens)."""
        import torch
        from transformers import GenerationConfig, set_seed

        s = self.settings
        eos = self._eos_ids()
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else (eos[0] if eos else 0)
        width = max(len(seq) for seq in ids)
        input_ids = torch.full((len(ids), width), pad, dtype=torch.long)
        mask = torch.zeros((len(ids), width), dtype=torch.long)
        for row, seq in enumerate(ids):
            input_ids[row, width - len(seq):] = torch.tensor(seq)
            mask[row, width - len(seq):] = 1
        limit = self.context_length
        new_tokens = max(1, min(s.max_new_tokens, limit - width)) if limit else s.max_new_tokens
        device = self.model.device
        try:
            with torch.inference_mode():
                if self.own_decoding:
                    sampling = decode.Sampling(s.temperature, s.top_p, s.seed) if s.sampling else decode.Sampling()
                    new = decode.decode(self.model, input_ids.to(device), mask.to(device), ids,
                                        max_new_tokens=new_tokens, eos_ids=eos, sampling=sampling)
                    return [self.tokenizer.decode(t, skip_special_tokens=True).strip() for t in new]
                config = GenerationConfig(
                    max_new_tokens=new_tokens, do_sample=s.sampling, num_beams=1,
                    temperature=s.temperature if s.sampling else None, top_p=s.top_p if s.sampling else None,
                    pad_token_id=pad, eos_token_id=eos or None)
                if s.sampling:
                    set_seed(s.seed + batch_no)  # python, numpy and torch: a batch samples the same whatever ran before
                out = self.model.generate(input_ids=input_ids.to(device), attention_mask=mask.to(device),
                                          generation_config=config)
        except (torch.OutOfMemoryError, MemoryError):
            raise OutOfMemoryError(
                f"out of memory generating {len(ids)} responses of up to {s.max_new_tokens} tokens with "
                f"{self.source.model_id} on {self.device}: try a smaller --batch-size or --max-new-tokens") from None
        return [self._decode(row[width:].tolist(), eos) for row in out.cpu()]

    def _decode(self, tokens: list[int], eos: list[int]) -> str:
        cut = next((i for i, t in enumerate(tokens) if t in eos), len(tokens))
        # stripped like the reference pipeline (llm-dna) strips its responses
        return self.tokenizer.decode(tokens[:cut], skip_special_tokens=True).strip()


@contextlib.contextmanager
def gguf_loading() -> Iterator[None]:
    """While GGUF files load: each file parsed once (`gguf.GGUFReader` is called for the config, the tokenizer and
    the weights, and by `_check_gguf`) by a reader over a plain array instead of `np.memmap`, whose bookkeeping on
    every slice made parsing SmolLM2's 49k-token vocabulary 2.4x slower (profiled: 5.2 vs 2.1 s a parse on an AMD
    EPYC); gguf's tensor-name map built once per (arch, layers) instead of once per module (transformers'
    ``get_gguf_hf_weights_map`` rebuilds it for every submodule; ~1/3 of SmolLM2's GGUF load); and the loader's
    own tqdm bar, which transformers' progress-bar switch does not reach, silenced when that switch is off. What
    is read is the same bytes; the parsed files are let go when the block ends."""
    try:
        import gguf
    except ImportError:
        yield
        return
    from tqdm.auto import tqdm
    from transformers import modeling_gguf_pytorch_utils as loader
    from transformers.utils import logging

    original_map, original_bar, original_reader = gguf.get_tensor_name_map, loader.tqdm, gguf.GGUFReader
    gguf.get_tensor_name_map = functools.lru_cache(maxsize=8)(original_map)
    loader.tqdm = functools.partial(tqdm, disable=not logging.is_progress_bar_enabled())
    gguf.GGUFReader = _parsed_once(_plain_array_reader(original_reader))
    try:
        yield
    finally:
        gguf.get_tensor_name_map, loader.tqdm, gguf.GGUFReader = original_map, original_bar, original_reader


def _plain_array_reader(reader: type) -> type:
    import numpy as np

    class PlainArrayReader(reader):  # type: ignore[misc, valid-type]
        """`GGUFReader` whose ``data`` is a plain ndarray view of its memory map (same bytes, no copy)."""

        @property
        def data(self) -> Any:
            return self._plain

        @data.setter
        def data(self, value: Any) -> None:
            self._plain = value.view(np.ndarray) if isinstance(value, np.memmap) else value

    return PlainArrayReader


def _parsed_once(reader: type) -> Any:
    parsed: dict[tuple, Any] = {}

    def open_reader(path: Any, mode: str = "r") -> Any:
        stat = Path(path).stat()
        key = (str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns, mode)
        if key not in parsed:
            parsed[key] = reader(path, mode)
        return parsed[key]

    return open_reader


def _trim_heap() -> None:
    """glibc only: return free heap memory to the OS (``malloc_trim``); a no-op elsewhere."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _bitsandbytes_config(load_in: str, device: str) -> Any:
    import importlib.util

    if not device.startswith("cuda") or importlib.util.find_spec("bitsandbytes") is None:
        raise InvalidInputError(f"{load_in} loading needs a CUDA GPU and the bitsandbytes package")
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(load_in_8bit=load_in == "8bit", load_in_4bit=load_in == "4bit")


def _parameter_bytes(config: Any, dtype: str) -> int | None:
    """The weights' size in `dtype`, counted on an empty (meta-device) model of `config`; None where it cannot
    be built."""
    import torch
    from accelerate import init_empty_weights
    from transformers import AutoModelForCausalLM

    try:
        with init_empty_weights():
            empty = AutoModelForCausalLM.from_config(config)
        empty.tie_weights()  # tied embeddings count once (left untied on the meta device; tying works outside it)
    except Exception:
        return None
    return sum(p.numel() for p in empty.parameters()) * torch.finfo(getattr(torch, dtype)).bits // 8


def _cache_bytes_per_token(config: Any, dtype: str) -> int:
    """Bytes of KV cache one token takes: keys and values of every layer's KV heads (0 when the config does not
    say)."""
    import torch

    text = config.get_text_config(decoder=True) if hasattr(config, "get_text_config") else config
    layers = getattr(text, "num_hidden_layers", None)
    heads = getattr(text, "num_attention_heads", None)
    kv_heads = getattr(text, "num_key_value_heads", None) or heads
    hidden = getattr(text, "hidden_size", None)
    head_dim = getattr(text, "head_dim", None) or (hidden // heads if heads and hidden else None)
    if not (layers and kv_heads and head_dim):
        return 0
    return 2 * layers * kv_heads * head_dim * torch.finfo(getattr(torch, dtype)).bits // 8


def _device_map(need: int | None, device: str) -> Any:
    """The whole model (`need` bytes) on `device` when it fits there (`GPU_FREE_SHARE` of its free memory), else
    sharded over all GPUs."""
    import torch

    try:
        free = torch.cuda.mem_get_info(torch.device(device))[0]
    except Exception:
        free = None
    if need is None or free is None:  # unknown size: let accelerate place it
        return "auto"
    return {"": device} if need < GPU_FREE_SHARE * free or torch.cuda.device_count() == 1 else "auto"
