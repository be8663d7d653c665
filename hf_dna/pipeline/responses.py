"""What every backend produces: `Responses` (one text per probe), made with `GenerationSettings`."""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

from ..errors import InvalidInputError


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
    batch_size: int | None = None  # None: 32 on CPU, sized from GPU memory on CUDA (`device.auto_batch_size`)
    load_in: str | None = None  # None|"8bit"|"4bit"
    trust_remote_code: bool = False

    def __post_init__(self) -> None:
        if self.chat_template not in {"auto", "on", "off"}:
            raise InvalidInputError(f"chat_template must be auto, on or off, not {self.chat_template!r}")
        if self.load_in not in {None, "8bit", "4bit"}:
            raise InvalidInputError(f"load_in must be 8bit or 4bit, not {self.load_in!r}")
        if self.max_new_tokens < 1 or (self.batch_size is not None and self.batch_size < 1):
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
    files: str | None = None  # the model's files on disk (dir or .gguf), when generated from them

    def followed_by(self, more: Responses) -> Responses:
        """These answers, then `more` (the same model's answers to the probes after these)."""
        return Responses(self.model_id, self.revision, self.texts + more.texts, self.generation, self.static,
                         self.files)

