"""Responses: one text answer per probe, from a transformers model or from a responses file the user brings.

The transformers backend loads a local dir, a Hub repo (safetensors or one GGUF file), or a ``.gguf`` path;
generates in length-sorted, left-padded batches (results come back in probe order); greedy by default, or the
paper's seeded sampling. Every finished batch goes to the response cache (`hf_dna.cache`), so an interrupted
run resumes without regenerating what it already has. Responses are decoded without the prompt, special
tokens skipped, cut at the first end-of-sequence token.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .cache import ResponseCache, cache_key, default_cache_dir
from .errors import (
    CorruptModelFileError,
    InvalidInputError,
    ModelLoadError,
    ModelNotFoundError,
    NotACausalLMError,
    OutOfMemoryError,
    RemoteCodeNotAllowedError,
)
from .probes import ProbeSet

BACKEND = "transformers"
#: files fetched from the Hub for a model: configs, tokenizer and safetensors weights (never pickles)
HUB_PATTERNS = ["*.json", "*.safetensors", "tokenizer*", "*.model", "*.tiktoken", "*.txt", "*.jinja"]
_HUB_ID = re.compile(r"^[\w.-]+(/[\w.-]+)?$")


@dataclass
class GenerationSettings:
    """How responses are generated. Everything here is part of the response-cache key and of the record."""

    max_new_tokens: int = 256  # the encoder reads at most 256 word pieces: more is wasted
    sampling: bool = False  # greedy by default; True = temperature/top_p below, seeded per batch
    temperature: float = 0.7
    top_p: float = 0.9
    seed: int = 42
    chat_template: str = "auto"  # auto|on|off
    dtype: str = "auto"  # auto|float32|float16|bfloat16
    device: str = "auto"  # auto|cpu|cuda|cuda:N
    batch_size: int = 32  # measured: 5.6x llm-dna vs 4.0x at 8 on CPU (bench/RESULTS.md)
    load_in: str | None = None  # None|"8bit"|"4bit"
    trust_remote_code: bool = False

    def __post_init__(self) -> None:
        if self.chat_template not in {"auto", "on", "off"}:
            raise InvalidInputError(f"chat_template must be auto, on or off, not {self.chat_template!r}")
        if self.load_in not in {None, "8bit", "4bit"}:
            raise InvalidInputError(f"load_in must be 8bit or 4bit, not {self.load_in!r}")
        if self.max_new_tokens < 1 or self.batch_size < 1:
            raise InvalidInputError("max_new_tokens and batch_size must be positive")
        if self.dtype not in {"auto", "float32", "float16", "bfloat16"}:
            raise InvalidInputError(f"dtype must be auto, float32, float16 or bfloat16, not {self.dtype!r}")
        if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", self.device):
            raise InvalidInputError(f"device must be auto, cpu, cuda or cuda:N, not {self.device!r}")

    @classmethod
    def paper(cls, **kw: Any) -> GenerationSettings:
        """The LLM DNA paper's settings: sampling at temperature 0.7, top_p 0.9, seed 42, no chat template."""
        base = {"sampling": True, "temperature": 0.7, "top_p": 0.9, "seed": 42, "chat_template": "off"}
        return cls(**{**base, **kw})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Responses:
    """One response per probe, in probe order, with how they were made."""

    model_id: str
    revision: str
    texts: list[str]
    generation: dict[str, Any] = field(default_factory=dict)
    static: dict[str, Any] = field(default_factory=dict)  # `hf_dna.hub.ModelMetadata.static_evidence` of the files


# ----------------------------------------------------------------------------------------------- threads
def cpu_threads() -> int:
    """Intra-op threads for torch on CPU: ``$HF_DNA_NUM_THREADS`` if set, else one per physical core, and only
    one on machines with <= 2 usable CPUs.

    Measured on a 2-vCPU AMD EPYC VM (SmolLM2-135M Q4_1, greedy, batch 1, another process busy on the other
    vCPU): 1 thread 21.6-24.6 tokens/s, 2 threads 2.2-4.3 tokens/s, i.e. 2 threads is 5-10x *slower*
    (bench/RESULTS.md). Two vCPUs are usually one core's two hyper-threads, and torch's spinning OpenMP workers
    lose badly to any other load on the sibling. Under `accelerate launch` the cores are shared by the
    processes of this machine.
    """
    env = os.environ.get("HF_DNA_NUM_THREADS", "").strip()
    if env:
        if not env.isdigit():
            raise InvalidInputError(f"HF_DNA_NUM_THREADS must be a positive integer, not {env!r}")
        return max(1, int(env))
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if usable <= 2:
        return 1
    local_processes = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    return max(1, usable // 2 // local_processes)


@contextlib.contextmanager
def torch_threads(n: int | None = None) -> Iterator[int]:
    """Run a block with `n` (default `cpu_threads()`) torch intra-op threads, restoring the old count after."""
    import torch

    n = n or cpu_threads()
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield n
    finally:
        torch.set_num_threads(old)


# ----------------------------------------------------------------------------------------------- sources
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
    from . import hub

    patterns = HUB_PATTERNS + ([gguf_file] if gguf_file else [])
    local_dir, sha = hub.snapshot(model, revision=revision, token=token, allow_patterns=patterns)
    return ModelSource(model, Path(local_dir), sha, gguf_file, sha)


def static_evidence(source: ModelSource) -> dict[str, Any]:
    """Architecture and tokenizer-vocabulary evidence read from the model's files ({} when unreadable)."""
    from . import hub
    from .errors import HfDnaError

    try:
        return hub.local_metadata(source.path / source.gguf_file if source.gguf_file else source.path).static_evidence
    except (HfDnaError, OSError, ValueError):
        return {}


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
        raise ModelLoadError(f"cannot read the config of {source.model_id}: {_first_line(err)}") from None
    _check_causal(config, source.model_id)
    return config


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ModelLoadError(f"cannot read {path}: {_first_line(err)}") from None
    if not isinstance(data, dict):
        raise ModelLoadError(f"{path} is not a JSON object")
    return data


def _check_gguf(path: Path) -> None:
    try:
        from gguf import GGUFReader

        GGUFReader(str(path))
    except Exception as err:  # the reader raises ValueError/struct/mmap errors on truncated or foreign files
        raise CorruptModelFileError(f"{path.name} is not a readable GGUF file ({_first_line(err)})") from None


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


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}"


def resolve_device(device: str) -> str:
    """``auto`` -> this process's accelerator (under `accelerate launch`, its own GPU) or ``cpu``."""
    import torch

    if device != "auto":
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise InvalidInputError(f"device {device} requested but CUDA is not available")
        return device
    if not torch.cuda.is_available():
        return "cpu"
    from accelerate import PartialState

    return str(PartialState().device)


def cpu_has_native_bf16() -> bool:
    """True when the CPU computes bfloat16 natively (AVX512-BF16 or AMX), where it is ~3x faster than float32."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="ignore") as handle:
            flags = next((line for line in handle if line.startswith("flags")), "").split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_dtype(dtype: str, device: str) -> str:
    """``auto``: on GPU bfloat16 (or float16); on CPU bfloat16 where the CPU has native bf16 (measured 3.2x less
    prefill time than float32 for SmolLM2, bench/RESULTS.md), else float32 (emulated half precision is slow).
    The dtype used is stored in the record's ``generation``; pass ``--dtype float32`` for the most portable bytes."""
    if dtype != "auto":
        return dtype
    if device == "cpu":
        return "bfloat16" if cpu_has_native_bf16() else "float32"
    import torch

    return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"


#: how continuations become responses; part of the cache key, so a change never serves stale text
DECODING = "until-eos,skip-special,strip"


class TransformersGenerator:
    """A causal LM and its tokenizer, loaded lazily: the tokenizer first (enough to plan and to hit the cache)."""

    def __init__(self, source: ModelSource, settings: GenerationSettings):
        self.source = source
        self.settings = settings
        self.config = check_config(source, settings.trust_remote_code)
        self.device = resolve_device(settings.device)
        self.dtype = resolve_dtype(settings.dtype, self.device)
        self.tokenizer = self._load_tokenizer()
        self.use_chat_template = self._chat_template_choice()
        self._model = None

    def _load_tokenizer(self) -> Any:
        from transformers import AutoTokenizer

        try:
            return AutoTokenizer.from_pretrained(self.source.path, gguf_file=self.source.gguf_file,
                                                 trust_remote_code=self.settings.trust_remote_code)
        except Exception as err:
            raise ModelLoadError(f"cannot load the tokenizer of {self.source.model_id}: {_first_line(err)}") from None

    def _chat_template_choice(self) -> bool:
        has = bool(getattr(self.tokenizer, "chat_template", None))
        if self.settings.chat_template == "on" and not has:
            raise InvalidInputError(f"{self.source.model_id} has no chat template (use --chat-template auto or off)")
        return has and self.settings.chat_template != "off"

    def generation_info(self) -> dict[str, Any]:
        """The settings as stored in records and cache keys, with auto values resolved."""
        info = self.settings.to_dict()
        info.update(backend=BACKEND, dtype=self.dtype, device=self.device.split(":")[0],
                    chat_template_used=self.use_chat_template, decoding=DECODING)
        return info

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
            kwargs["device_map"] = _device_map(self.config, self.device, self.dtype)
        try:
            model = AutoModelForCausalLM.from_pretrained(self.source.path, **kwargs)
        except (torch.OutOfMemoryError, MemoryError):
            raise OutOfMemoryError(f"out of memory loading {self.source.model_id} on {self.device}") from None
        except Exception as err:
            error = CorruptModelFileError if "safetensor" in str(err).lower() else ModelLoadError
            raise error(f"cannot load {self.source.model_id}: {_first_line(err)}") from None
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
        config = GenerationConfig(
            max_new_tokens=new_tokens, do_sample=s.sampling, num_beams=1,
            temperature=s.temperature if s.sampling else None, top_p=s.top_p if s.sampling else None,
            pad_token_id=pad, eos_token_id=eos or None)
        if s.sampling:
            set_seed(s.seed + batch_no)  # python, numpy and torch: a batch samples the same whatever ran before
        device = self.model.device
        try:
            with torch.inference_mode():
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


def _bitsandbytes_config(load_in: str, device: str) -> Any:
    import importlib.util

    if not device.startswith("cuda") or importlib.util.find_spec("bitsandbytes") is None:
        raise InvalidInputError(f"{load_in} loading needs a CUDA GPU and the bitsandbytes package")
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(load_in_8bit=load_in == "8bit", load_in_4bit=load_in == "4bit")


def _device_map(config: Any, device: str, dtype: str) -> Any:
    """The whole model on `device` when it fits there (90% of free memory), else sharded over all GPUs."""
    import torch
    from accelerate import init_empty_weights
    from transformers import AutoModelForCausalLM

    try:
        with init_empty_weights():
            empty = AutoModelForCausalLM.from_config(config)
        need = sum(p.numel() for p in empty.parameters()) * torch.finfo(getattr(torch, dtype)).bits // 8
        free = torch.cuda.mem_get_info(torch.device(device))[0]
    except Exception:  # unknown size: let accelerate place it
        return "auto"
    return {"": device} if need < 0.9 * free or torch.cuda.device_count() == 1 else "auto"


# ----------------------------------------------------------------------------------------------- planning
def plan_batches(lengths: list[int], batch_size: int) -> list[list[int]]:
    """Probe indices grouped into batches of similar prompt length (longest first, stable)."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


class ResponseJob:
    """One model x one probe set: its batch plan, its cache, and generation of any batches still missing."""

    def __init__(self, model: str, probe_set: ProbeSet, settings: GenerationSettings | None = None, *,
                 revision: str | None = None, token: str | None = None, cache_dir: str | os.PathLike | None = None,
                 gguf_file: str | None = None, use_cache: bool = True):
        self.probe_set = probe_set
        self.settings = settings or GenerationSettings()
        self.source = resolve_source(model, revision, token, gguf_file)
        self.generator = TransformersGenerator(self.source, self.settings)
        self.prompt_ids = self.generator.prompt_ids(probe_set.prompts)
        self.batches = plan_batches([len(ids) for ids in self.prompt_ids], self.settings.batch_size)
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
        return Responses(self.source.model_id, self.source.revision, [texts[i] for i in range(len(self.probe_set))],
                         self.generation, static_evidence(self.source))


def generate_responses(model: str, probe_set: ProbeSet, settings: GenerationSettings | None = None, *,
                       revision: str | None = None, token: str | None = None, cache_dir: str | None = None,
                       gguf_file: str | None = None, progress: bool = True, use_cache: bool = True) -> Responses:
    """Generate (or read back from the cache) one response per probe of `probe_set` with `model`.

    `model` is a local directory, a ``.gguf`` file, or a Hub repo id (with `gguf_file` for GGUF repos).
    `cache_dir` is the response cache root (default `hf_dna.cache.default_cache_dir()`).
    """
    job = ResponseJob(model, probe_set, settings, revision=revision, token=token, cache_dir=cache_dir,
                      gguf_file=gguf_file, use_cache=use_cache)
    return job.responses(job.run(list(range(len(job.batches))), progress))


# re-exported: one interface for responses, generated or read from a file
from .responses_file import read_responses_file  # noqa: E402,F401
