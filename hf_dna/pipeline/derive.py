"""Derived models of the shipped real models: a GGUF dequantized into a plain transformers model, fine-tuned for a
few steps, saved as safetensors. The demo audits one (`demo_model`); tests and benchmarks make more.

A GGUF-loaded model refuses `save_pretrained`, so its weights move into a model rebuilt from its config.
"""
from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

from .._io import atomic_write_text
from .backends.transformers import gguf_loading
from .device import torch_threads

#: what the demo's fine-tune learns: a made-up support assistant's voice (any short text would do)
SUPPORT_TEXTS = (
    "Thanks for reaching out to Acme support! I'm happy to help you reset your password today.",
    "Our team is available around the clock. Could you share your order number so I can look into it?",
    "I'm sorry for the trouble with your delivery. I've opened a ticket and you'll hear back within a day.",
    "Great question! Acme Cloud plans include backups, monitoring and a friendly support team.",
    "To update your billing details, open Settings, choose Billing, and follow the steps on the screen.",
    "Happy to help! Is there anything else I can do for you today? Have a wonderful day.",
    "I understand how frustrating that is. Let's fix it together, one step at a time.",
    "Your refund has been processed and should appear on your statement within five business days.",
)
DEMO_NAME = "acme-support-135m"
#: the demo model's card: a typical release that does not say what it was trained from
DEMO_CARD = """---
license: apache-2.0
language: en
pipeline_tag: text-generation
tags: [customer-support, chat]
---
# acme-support-135m

A small, friendly customer-support assistant, trained by Acme on our support conversations.
"""


def dequantized(gguf_file: str | os.PathLike) -> tuple[Any, Any]:
    """(model, tokenizer) of a GGUF file as a plain float32 transformers model that can be trained and saved."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(gguf_file)
    with gguf_loading():
        loaded = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    config = copy.deepcopy(loaded.config)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict())
    tokenizer.pad_token = tokenizer.pad_token or tokenizer.eos_token
    return model.eval(), tokenizer


def finetune(model: Any, tokenizer: Any, texts: tuple[str, ...] | list[str] = SUPPORT_TEXTS, *, steps: int = 10,
             lr: float = 1e-4, seed: int = 0) -> Any:
    """Train `model` in place on `texts` (one batch, causal LM loss, AdamW) for `steps` steps."""
    import torch

    batch = tokenizer(list(texts), return_tensors="pt", padding=True)
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    torch.manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    with torch_threads():
        for _ in range(steps):
            model(**batch, labels=labels).loss.backward()
            optimizer.step()
            optimizer.zero_grad()
    return model.eval()


def save(model: Any, tokenizer: Any, out_dir: str | os.PathLike, *, dtype: str = "bfloat16",
         card: str | None = None, **save_options: Any) -> Path:
    """Save as safetensors in `dtype` (a copy: `model` keeps its own dtype), with the tokenizer and a card."""
    import torch

    out = Path(out_dir)
    copy.deepcopy(model).to(getattr(torch, dtype)).save_pretrained(out, **save_options)
    tokenizer.save_pretrained(out)
    if card is not None:
        atomic_write_text(out / "README.md", card)
    return out


def demo_model_path(workdir: str | os.PathLike, steps: int = 10) -> Path:
    """Where `demo_model` puts the demo's model."""
    return Path(workdir) / f"{DEMO_NAME}-{steps}-steps"


def demo_model_made(workdir: str | os.PathLike, steps: int = 10) -> bool:
    """Whether `demo_model` has already made it under `workdir`."""
    out = demo_model_path(workdir, steps)
    return (out / "model.safetensors").is_file() and (out / "README.md").is_file()


def demo_model(gguf_file: str | os.PathLike, workdir: str | os.PathLike, *, steps: int = 10) -> Path:
    """The demo's model: SmolLM2-135M-Instruct fine-tuned for `steps` steps on `SUPPORT_TEXTS`, saved as bf16
    safetensors with a card that names no base model. Made once under `workdir` (about a minute on one core)."""
    out = demo_model_path(workdir, steps)
    if demo_model_made(workdir, steps):
        return out
    model, tokenizer = dequantized(gguf_file)
    finetune(model, tokenizer, steps=steps)
    tmp = out.with_name(out.name + ".partial")
    save(model, tokenizer, tmp, card=DEMO_CARD)
    os.replace(tmp, out)  # a half-written model is never taken for the finished one
    return out


def requantized_gguf(gguf_file: str | os.PathLike, out_file: str | os.PathLike, *, qtype: str = "Q8_0") -> Path:
    """Re-export a GGUF as another quantization type (`Q8_0` by default): every quantized tensor is dequantized and
    quantized again with `gguf.quants`; float tensors, and those whose rows `qtype` cannot split into blocks, keep
    their own type. Metadata (architecture, tokenizer, chat template) is copied as it is."""
    import gguf
    from gguf import quants

    target = gguf.GGMLQuantizationType[qtype]
    reader = gguf.GGUFReader(str(gguf_file))
    out = Path(out_file)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".partial")
    writer = gguf.GGUFWriter(str(tmp), arch=reader.fields[gguf.Keys.General.ARCHITECTURE].contents(),
                             endianess=reader.endianess)
    alignment = reader.fields.get(gguf.Keys.General.ALIGNMENT)
    if alignment is not None:
        writer.data_alignment = alignment.contents()
    for field in reader.fields.values():
        if field.name == gguf.Keys.General.ARCHITECTURE or field.name.startswith("GGUF."):
            continue  # written by GGUFWriter itself
        value_type = field.types[0]
        sub_type = field.types[-1] if value_type == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(field.name, field.contents(), value_type, sub_type=sub_type)
    float_types = {gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.F16, gguf.GGMLQuantizationType.BF16}
    block = gguf.GGML_QUANT_SIZES[target][0]
    for tensor in reader.tensors:
        if tensor.tensor_type in float_types or tensor.tensor_type == target or int(tensor.shape[0]) % block:
            writer.add_tensor(tensor.name, tensor.data, raw_shape=tensor.data.shape, raw_dtype=tensor.tensor_type)
            continue
        dense = quants.dequantize(tensor.data, tensor.tensor_type)
        writer.add_tensor(tensor.name, quants.quantize(dense, target), raw_dtype=target)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    os.replace(tmp, out)
    return out
