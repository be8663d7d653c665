"""Weight sketches (hf_dna.evidence.weights) on tiny models built here: derived models match their base with the
right relation, unrelated ones do not, nothing is unpickled, corrupt files raise typed errors, and the Hub path reads
the same sketch from a few byte ranges. The builders below are reused by bench/bench_weights.py."""
from __future__ import annotations

import copy
import json
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest

from hf_dna.errors import CorruptModelFileError, GatedRepoError, HfDnaError, RepoNotFoundError
from hf_dna.evidence import weights as W

# ---- builders (also used by bench/bench_weights.py) -----------------------------------------------------------------
VOCAB = 1200  # >= EMBED_START + 64: the embedding rows read are ids 1000..1063, so added tokens line up


def tiny_llama(seed: int, hidden: int = 128, intermediate: int = 256, layers: int = 4, vocab: int = VOCAB):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=vocab, hidden_size=hidden, intermediate_size=intermediate,
                         num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=128, tie_word_embeddings=True)
    return LlamaForCausalLM(config)


def train(model, steps: int, lr: float, data_seed: int = 0, params=None):
    """`steps` of AdamW on one fixed batch of token ids (the same "text" for every model given `data_seed`)."""
    import torch

    ids = torch.randint(0, model.config.vocab_size, (8, 32), generator=torch.Generator().manual_seed(data_seed))
    optimizer = torch.optim.AdamW(params if params is not None else model.parameters(), lr=lr)
    model.train()
    for _ in range(steps):
        model(input_ids=ids, labels=ids).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    return model.eval()


def merged_lora(model, targets=("q_proj", "v_proj"), rank: int = 4, steps: int = 20, lr: float = 1e-2, seed: int = 0):
    """Train a LoRA (B @ A, B starting at zero) on `targets` with the base frozen, then merge it into the weights."""
    import torch
    from torch.nn.utils import parametrize

    class LoRA(torch.nn.Module):
        def __init__(self, out_features: int, in_features: int):
            super().__init__()
            self.A = torch.nn.Parameter(torch.randn(rank, in_features) / in_features ** 0.5)
            self.B = torch.nn.Parameter(torch.zeros(out_features, rank))

        def forward(self, weight):
            return weight + self.B @ self.A * (16 / rank)

    torch.manual_seed(seed)
    model = copy.deepcopy(model)
    for p in model.parameters():
        p.requires_grad_(False)
    modules = [m for n, m in model.named_modules() if n.rsplit(".", 1)[-1] in targets]
    for m in modules:
        parametrize.register_parametrization(m, "weight", LoRA(*m.weight.shape))
    params = [p for m in modules for p in m.parametrizations.weight[0].parameters()]
    for p in params:
        p.requires_grad_(True)
    train(model, steps, lr, params=params)
    for m in modules:
        parametrize.remove_parametrizations(m, "weight", leave_parametrized=True)
    return model


def save(model, out: Path, dtype=None, **kwargs) -> Path:
    import torch

    model = copy.deepcopy(model)
    if dtype is not None:
        model = model.to(getattr(torch, dtype))
    model.save_pretrained(out, **kwargs)
    return out


# Q4_K: gguf-py only dequantizes it, so here is a numpy port of llama.cpp's quantize_row_q4_K_ref (make_qkx2_quants)
def _nearest(x):
    return np.floor(x + 0.5)


def _make_qkx2(x, w, nmax, rmin=-1.0, rdelta=0.1, nstep=20):
    lo, hi = np.minimum(x.min(-1), 0.0), x.max(-1)
    flat = hi == lo
    span = np.where(flat, 1.0, hi - lo)
    sum_w, sum_x = w.sum(-1), (w * x).sum(-1)
    scale = span / nmax
    levels = np.clip(_nearest((x - lo[..., None]) / scale[..., None]), 0, nmax)
    best = (w * (scale[..., None] * levels + lo[..., None] - x) ** 2).sum(-1)
    best_scale, best_min = scale.copy(), lo.copy()
    for i in range(nstep + 1):
        iscale = (rmin + rdelta * i + nmax) / span
        q = np.clip(_nearest(iscale[..., None] * (x - lo[..., None])), 0, nmax)
        sl, sl2, sxl = (w * q).sum(-1), (w * q * q).sum(-1), (w * q * x).sum(-1)
        det = sum_w * sl2 - sl * sl
        with np.errstate(divide="ignore", invalid="ignore"):
            this_scale = (sum_w * sxl - sum_x * sl) / det
            this_min = (sl2 * sum_x - sl * sxl) / det
            positive = this_min > 0
            this_scale = np.where(positive, sxl / sl2, this_scale)
            this_min = np.where(positive, 0.0, this_min)
            err = (w * (this_scale[..., None] * q + this_min[..., None] - x) ** 2).sum(-1)
        better = (det > 0) & (err < best)
        best = np.where(better, err, best)
        best_scale, best_min = np.where(better, this_scale, best_scale), np.where(better, this_min, best_min)
    return np.where(flat, 0.0, best_scale), -best_min


def quantize_q4_k(x: np.ndarray) -> np.ndarray:
    """Rows of `x` (length a multiple of 256) as Q4_K blocks (144 bytes per 256 values), like llama.cpp's reference."""
    x = np.asarray(x, np.float32)
    n = x.size // 256
    blocks = x.reshape(n, 8, 32).astype(np.float64)
    av = np.sqrt((blocks.reshape(n, 256) ** 2).mean(-1))
    scales, mins = _make_qkx2(blocks, av[:, None, None] + np.abs(blocks), 15)
    max_scale, max_min = scales.max(-1), mins.max(-1)
    inv_s = np.where(max_scale > 0, 63 / np.where(max_scale > 0, max_scale, 1), 0)
    inv_m = np.where(max_min > 0, 63 / np.where(max_min > 0, max_min, 1), 0)
    ls = np.minimum(_nearest(inv_s[:, None] * scales), 63).astype(np.uint8)
    lm = np.minimum(_nearest(inv_m[:, None] * mins), 63).astype(np.uint8)
    d, dmin = (max_scale / 63).astype(np.float16), (max_min / 63).astype(np.float16)
    step, offset = d.astype(np.float32)[:, None] * ls, dmin.astype(np.float32)[:, None] * lm
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.where(step[..., None] > 0, np.clip(_nearest((blocks + offset[..., None]) / step[..., None]), 0, 15), 0)
    q = q.astype(np.uint8).reshape(n, 256)
    packed = np.zeros((n, 12), np.uint8)
    for j in range(8):
        if j < 4:
            packed[:, j], packed[:, j + 4] = ls[:, j], lm[:, j]
        else:
            packed[:, j + 4] = (ls[:, j] & 0xF) | ((lm[:, j] & 0xF) << 4)
            packed[:, j - 4] |= (ls[:, j] >> 4) << 6
            packed[:, j] |= (lm[:, j] >> 4) << 6
    qs = np.concatenate([q[:, 64 * j:64 * j + 32] | (q[:, 64 * j + 32:64 * j + 64] << 4) for j in range(4)], axis=1)
    out = np.concatenate([d.view(np.uint8).reshape(n, 2), dmin.view(np.uint8).reshape(n, 2), packed, qs], axis=1)
    return out.reshape(*x.shape[:-1], x.shape[-1] // 256 * 144)


#: a Q4_K_M-like mix: Q4_K (Q5_0 where a row is not a multiple of 256, as llama.cpp falls back), attn_v and
#: token_embd Q8_0 (standing in for Q6_K, which gguf-py cannot quantize)
Q4_K_MIX = "Q4_K_M-like"


def write_gguf(hf_dir: Path, out: Path, qtype: str) -> Path:
    """A GGUF of a safetensors llama dir, as llama.cpp's converter writes it: GGUF names, Q/K rows permuted for rope,
    norms F32, matrices in `qtype` (a GGML type name, or `Q4_K_MIX`), quantized with gguf-py (Q4_K: the port above)."""
    import gguf
    import torch
    from safetensors.torch import load_file

    T = gguf.GGMLQuantizationType
    config = json.loads((hf_dir / "config.json").read_text())
    state = {}
    for file in sorted(hf_dir.glob("*.safetensors")):
        state.update({k: v.to(torch.float32).numpy() for k, v in load_file(str(file)).items()})
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, config["num_hidden_layers"])
    writer = gguf.GGUFWriter(str(out), "llama")
    writer.add_block_count(config["num_hidden_layers"])

    def permute(w, heads):
        return w.reshape(heads, 2, w.shape[0] // heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)

    for name, w in sorted(state.items()):
        target = names.get_name(name, try_suffixes=(".weight", ".bias"))
        if target is None:
            continue
        if name.endswith("q_proj.weight"):
            w = permute(w, config["num_attention_heads"])
        elif name.endswith("k_proj.weight"):
            w = permute(w, config["num_key_value_heads"])
        if w.ndim == 1 or qtype == "F32":
            writer.add_tensor(target, np.ascontiguousarray(w, np.float32))
            continue
        kind = qtype
        if qtype == Q4_K_MIX:
            kind = "Q8_0" if any(k in target for k in ("attn_v", "token_embd")) else "Q4_K"
        if kind == "Q4_K" and w.shape[-1] % 256:
            kind = "Q5_0"
        if kind == "F16":
            writer.add_tensor(target, w.astype(np.float16))
            continue
        t = T[kind]
        data = quantize_q4_k(w) if t == T.Q4_K else gguf.quants.quantize(np.ascontiguousarray(w, np.float32), t)
        writer.add_tensor(target, data, raw_shape=data.shape, raw_dtype=t)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return out


def through_gguf(model, qtype: str):
    """A copy of `model` whose matrices went through GGUF quantization and back (a dequantized re-upload)."""
    import gguf
    import torch

    model = copy.deepcopy(model)
    t = gguf.GGMLQuantizationType[qtype]
    with torch.no_grad():
        for param in model.parameters():
            if param.ndim == 2:
                q = gguf.quants.quantize(param.detach().numpy().astype(np.float32), t)
                param.copy_(torch.from_numpy(gguf.quants.dequantize(q, t).copy()))
    return model


def build_family(root: Path, seed: int = 1, unrelated_seed: int = 2) -> dict[str, Path]:
    """A base (trained a little, so norms are not all ones) and its relatives, as safetensors dirs and GGUF files."""
    base = train(tiny_llama(seed), 30, 3e-3)
    paths = {"base": save(base, root / "base")}
    paths["bf16"] = save(base, root / "bf16", dtype="bfloat16")
    paths["fp16"] = save(base, root / "fp16", dtype="float16")
    paths["resharded"] = save(base, root / "resharded", max_shard_size="200KB")
    paths["finetune-few"] = save(train(copy.deepcopy(base), 3, 1e-3, data_seed=5), root / "finetune-few")
    many = train(copy.deepcopy(base), 100, 1e-3, data_seed=5)
    paths["finetune-many"] = save(many, root / "finetune-many", dtype="bfloat16")
    paths["lora-qv"] = save(merged_lora(base), root / "lora-qv")
    added = copy.deepcopy(base)
    added.resize_token_embeddings(VOCAB + 8, mean_resizing=False)
    paths["added-tokens"] = save(train(added, 3, 1e-3, data_seed=6), root / "added-tokens")
    unrelated = train(tiny_llama(unrelated_seed), 30, 3e-3)  # same config, same text, another init
    paths["unrelated"] = save(unrelated, root / "unrelated")
    paths["wide"] = save(tiny_llama(seed, hidden=96, intermediate=192), root / "wide")
    for qtype in ("F16", "Q8_0", "Q4_1", "Q4_0", Q4_K_MIX):
        paths[f"gguf-{qtype}"] = write_gguf(paths["base"], root / f"base-{qtype}.gguf", qtype)
    paths["gguf-finetune-many-Q4_0"] = write_gguf(paths["finetune-many"], root / "many-Q4_0.gguf", "Q4_0")
    paths["gguf-unrelated-Q4_1"] = write_gguf(paths["unrelated"], root / "unrelated-Q4_1.gguf", "Q4_1")
    dequantized = through_gguf(base, "Q4_1")  # what transformers makes of the Q4_1 GGUF
    paths["dequantized-Q4_1"] = save(dequantized, root / "dequantized-Q4_1")
    paths["gguf-Q8_0-of-dequantized-Q4_1"] = write_gguf(paths["dequantized-Q4_1"], root / "requant-Q8_0.gguf", "Q8_0")
    paths["finetune-of-dequantized-Q4_1"] = save(train(dequantized, 3, 1e-3, data_seed=5), root / "ft-dequantized")
    paths["bnb-nf4"] = write_bnb(paths["base"], root / "bnb-nf4", "nf4")
    paths["bnb-int8"] = write_bnb(paths["base"], root / "bnb-int8", "int8")
    paths["bnb-nf4-finetune-many"] = write_bnb(paths["finetune-many"], root / "bnb-nf4-many", "nf4")
    return paths


NF4 = [-1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635,
       -0.18477343022823334, -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725,
       0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0]


def write_bnb(hf_dir: Path, out: Path, mode: str = "nf4") -> Path:
    """A checkpoint laid out as transformers saves a bitsandbytes model (load_in_4bit nf4 with double quantization,
    or load_in_8bit), written with numpy so the tests need no bitsandbytes: the Linear weights of the decoder."""
    import torch
    from safetensors.numpy import save_file
    from safetensors.torch import load_file

    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.to(torch.float32).numpy() for k, v in load_file(str(hf_dir / "model.safetensors")).items()}
    result = {}
    nf4, nested_map = np.array(NF4, np.float32), np.linspace(-1, 1, 256).astype(np.float32)
    for key, w in state.items():
        linear = ".layers." in key and key.endswith("_proj.weight")
        if not linear:
            result[key] = w
        elif mode == "int8":
            scb = np.abs(w).max(axis=1).astype(np.float32)
            result[key] = np.clip(np.round(w / scb[:, None] * 127), -127, 127).astype(np.int8)
            result[key.removesuffix("weight") + "SCB"] = scb
            result[key.removesuffix("weight") + "weight_format"] = np.array(0, np.uint8)
        else:
            flat = w.astype(np.float32).reshape(-1, 64)
            absmax = np.abs(flat).max(axis=1)
            codes = np.abs(flat / absmax[:, None] - nf4[:, None, None]).argmin(axis=0).astype(np.uint8).reshape(-1)
            offset = float(absmax.mean())
            centred = (absmax - offset).reshape(-1)
            pad = -len(centred) % 256
            blocks = np.concatenate([centred, np.zeros(pad, np.float32)]).reshape(-1, 256)
            nested_absmax = np.abs(blocks).max(axis=1).astype(np.float32)
            scaled = (blocks / nested_absmax[:, None]).reshape(-1)[:len(centred)]
            absmax_codes = np.abs(scaled[None, :] - nested_map[:, None]).argmin(axis=0).astype(np.uint8)
            result[key] = ((codes[0::2] << 4) | codes[1::2]).reshape(-1, 1)
            result[key + ".absmax"] = absmax_codes
            result[key + ".nested_absmax"] = nested_absmax
            result[key + ".nested_quant_map"] = nested_map
            result[key + ".quant_map"] = nf4
            meta = {"quant_type": "nf4", "blocksize": 64, "dtype": "float32", "shape": list(w.shape),
                    "nested_blocksize": 256, "nested_dtype": "float32", "nested_offset": offset}
            result[key + ".quant_state.bitsandbytes__nf4"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    save_file(result, str(out / "model.safetensors"), metadata={"format": "pt"})
    (out / "config.json").write_text((hf_dir / "config.json").read_text())
    return out


NEAR_IDENTICAL = ["bf16", "fp16", "resharded", "gguf-F16", "gguf-Q8_0", "gguf-Q4_1", "gguf-Q4_0", f"gguf-{Q4_K_MIX}",
                  "bnb-nf4", "bnb-int8", "dequantized-Q4_1"]
CLOSE = ["finetune-few", "finetune-many", "lora-qv", "added-tokens", "gguf-finetune-many-Q4_0", "bnb-nf4-finetune-many"]
UNRELATED = ["unrelated", "gguf-unrelated-Q4_1"]


# ---- fixtures ---------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def family(tmp_path_factory) -> dict[str, Path]:
    import torch

    with torch.random.fork_rng():
        return build_family(tmp_path_factory.mktemp("weight-family"))


@pytest.fixture(scope="module")
def sketches(family) -> dict[str, dict]:
    return {name: W.sketch_files(path) for name, path in family.items()}


# ---- the sketch -------------------------------------------------------------------------------------------------------
def test_sketch_is_small_versioned_json_with_role_names(sketches):
    sketch = sketches["base"]
    assert sketch["scheme"] == W.SCHEME and sketch["version"] == W.VERSION and sketch["format"] == "safetensors"
    assert json.loads(json.dumps(sketch)) == sketch
    assert W.sketch_size(sketch) < 64_000
    roles = set(sketch["tensors"])
    assert {"token_embd", "output_norm", "blk.0.attn_v", "blk.3.ffn_down", "blk.2.ffn_norm"} <= roles
    assert not any("attn_q" in r or "attn_k" in r for r in roles)  # rope-permuted in GGUF: left out
    assert sketch["tensors"]["blk.0.ffn_down"]["shape"] == [128, 256]
    assert sketch["tensors"]["token_embd"]["rows"] == [W.EMBED_START, 64]
    gguf_sketch = sketches["gguf-Q4_1"]
    assert gguf_sketch["format"] == "gguf" and set(gguf_sketch["tensors"]) == roles  # same roles from GGUF names
    assert gguf_sketch["tensors"]["blk.0.ffn_down"]["shape"] == [128, 256]  # GGUF dims reversed back
    assert sketch["bytes_read"] < sketch["bytes_total"] / 2


def test_sketch_is_deterministic_and_reads_the_same_rows_whatever_the_dtype(family, sketches):
    again = W.sketch_files(family["base"])
    assert again["tensors"] == sketches["base"]["tensors"]
    bf16 = sketches["bf16"]["tensors"]
    assert all(bf16[r]["rows"] == e["rows"] for r, e in sketches["base"]["tensors"].items())
    assert bf16["blk.0.attn_v"]["dtype"] == "BF16" and bf16["blk.0.attn_v"]["noise"] > 0
    # bf16 norms near 1 have few distinct values, but no hidden 4-bit grid is claimed for a cast
    assert not any("grid_noise" in t for t in bf16.values())


@pytest.mark.parametrize("name", NEAR_IDENTICAL)
def test_casts_reshards_and_quantizations_are_near_identical(sketches, name):
    result = W.compare_sketches(sketches["base"], sketches[name])
    assert result["relation"] == "near-identical", result["note"]
    assert result["tensors_compared"] >= 20 and result["similarity"] > 0.99
    assert W.compare_sketches(sketches[name], sketches["base"])["relation"] == "near-identical"  # symmetric
    assert result["p_related"] > result["p_decision"]  # the fitted calibration (weight_calibration.json)
    statuses = {t["status"] for t in result["per_tensor"].values()}
    if name.startswith(("gguf-Q", "bnb-")):  # the difference is the quantization noise the file's blocks imply
        assert "quantized" in statuses


@pytest.mark.parametrize("name", CLOSE)
def test_finetunes_merges_and_added_tokens_are_close(sketches, name):
    result = W.compare_sketches(sketches["base"], sketches[name])
    assert result["relation"] == "close", result["note"]
    assert result["p_related"] > result["p_decision"]
    assert "fine-tune" in result["note"]


def test_copies_made_from_a_dequantized_gguf(sketches):
    """Against the Q4_1 GGUF: its dequantized re-save is the same weights; a Q8_0 re-quantization of that re-save
    differs by Q8_0's noise only (not Q4_1's + Q8_0's); a 3-step fine-tune of the re-save is close. Against the
    original: the re-save is near-identical through the 4-bit grid its values still lie on."""
    gguf_q41 = sketches["gguf-Q4_1"]
    resave = W.compare_sketches(gguf_q41, sketches["dequantized-Q4_1"])
    assert resave["relation"] == "near-identical" and {t["status"] for t in resave["per_tensor"].values()} == {"same"}
    requant = W.compare_sketches(gguf_q41, sketches["gguf-Q8_0-of-dequantized-Q4_1"])
    assert requant["relation"] == "near-identical", requant["note"]
    original = W.compare_sketches(sketches["base"], sketches["dequantized-Q4_1"])  # via its hidden 4-bit grid
    assert original["relation"] == "near-identical", original["note"]
    assert sketches["dequantized-Q4_1"]["tensors"]["blk.0.ffn_up"]["grid_noise"] > 0
    assert "grid_noise" not in sketches["base"]["tensors"]["blk.0.ffn_up"]
    finetune = W.compare_sketches(gguf_q41, sketches["finetune-of-dequantized-Q4_1"])
    assert finetune["relation"] == "close", finetune["note"]
    assert W.compare_sketches(sketches["base"], sketches["finetune-of-dequantized-Q4_1"])["relation"] == "close"


def test_merged_lora_on_q_v_differs_only_in_v(sketches):
    per_tensor = W.compare_sketches(sketches["base"], sketches["lora-qv"])["per_tensor"]
    differing = {role for role, t in per_tensor.items() if t["status"] == "differs"}
    assert differing == {f"blk.{i}.attn_v" for i in range(4)}


def test_added_tokens_keep_the_embedding_comparable(sketches):
    assert sketches["added-tokens"]["tensors"]["token_embd"]["shape"] == [VOCAB + 8, 128]
    assert "token_embd" in W.compare_sketches(sketches["base"], sketches["added-tokens"])["per_tensor"]


@pytest.mark.parametrize("name", UNRELATED)
def test_unrelated_same_shape_model_is_unrelated(sketches, name):
    result = W.compare_sketches(sketches["base"], sketches[name])
    assert result["relation"] == "unrelated", result["note"]
    assert result["tensors_compared"] >= 20 and abs(result["similarity"]) < 0.15
    assert result["p_related"] < result["p_decision"]


def test_every_true_pair_scores_above_every_unrelated_pair(sketches):
    true = [W.compare_sketches(sketches["base"], sketches[n])["similarity"] for n in NEAR_IDENTICAL + CLOSE]
    false = [W.compare_sketches(sketches[a], sketches[b])["similarity"]
             for a in ["base", "finetune-many", "gguf-Q4_0"] for b in UNRELATED]
    assert min(true) - max(false) > 0.5


def test_different_shapes_give_no_weight_evidence_never_unrelated(sketches):
    result = W.compare_sketches(sketches["base"], sketches["wide"])
    assert result["similarity"] is None and result["relation"] is None and result["tensors_compared"] == 0
    assert result["p_related"] is None
    assert result["note"] == "no weight evidence: shapes differ"


def test_sketches_with_other_settings_are_not_compared(sketches):
    other = copy.deepcopy(sketches["bf16"])
    other["projection"]["seed"] += 1
    result = W.compare_sketches(sketches["base"], other)
    assert result["similarity"] is None and "different settings" in result["note"]


def test_quantization_noise_estimate_matches_the_block_scales():
    """For Q8_0 / Q4_0 / Q4_1 the grid step is each block's fp16 scale d (first 2 bytes): the estimate must match."""
    import gguf

    rng = np.random.default_rng(0)
    x = (rng.standard_normal((16, 256)) * 0.05).astype(np.float32)
    for name in ("Q8_0", "Q4_0", "Q4_1"):
        qtype = gguf.GGMLQuantizationType[name]
        raw = gguf.quants.quantize(x, qtype)
        _, type_size = gguf.GGML_QUANT_SIZES[qtype]
        d = raw.reshape(-1, type_size)[:, :2].copy().view(np.float16).astype(np.float64).ravel()
        values = gguf.quants.dequantize(raw, qtype).astype(np.float64)
        assert W._quant_noise(values, name) == pytest.approx(np.mean(np.abs(d) ** 2) / 12, rel=1e-3)
        actual = np.mean((values - x) ** 2)  # the real error is what the estimate says
        assert 0.8 < W._quant_noise(values, name) / actual < 1.25


def test_bitsandbytes_layout_decodes_like_bitsandbytes(family, sketches, tmp_path):
    """With bitsandbytes installed: a real load_in_4bit / load_in_8bit save of the base decodes to the same values
    bitsandbytes' own dequantization gives, and matches the base as near-identical."""
    pytest.importorskip("bitsandbytes")
    import bitsandbytes.functional as F
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    configs = {"nf4": BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                         bnb_4bit_compute_dtype=torch.float32),
               "fp4": BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="fp4"),
               "int8": BitsAndBytesConfig(load_in_8bit=True)}
    for mode, config in configs.items():
        model = AutoModelForCausalLM.from_pretrained(family["base"], quantization_config=config, device_map="cpu")
        model.save_pretrained(tmp_path / mode)
        sketch = W.sketch_files(tmp_path / mode)
        assert sketch["tensors"]["blk.0.ffn_down"]["dtype"] == f"BNB_{mode.upper()}"
        assert W.compare_sketches(sketches["base"], sketch)["relation"] == "near-identical"
    state_dict = load_file(str(tmp_path / "nf4" / "model.safetensors"))
    key = "model.layers.1.mlp.down_proj.weight"
    parts = {k[len(key) + 1:]: v for k, v in state_dict.items() if k.startswith(key + ".")}
    reference = F.dequantize_4bit(state_dict[key], F.QuantState.from_dict(parts, device="cpu")).numpy()
    counter = W._Counter()
    src = W._local_source(tmp_path / "nf4" / "model.safetensors", "model.safetensors", counter)
    plan = W._plan("blk.1.ffn_down", W._bnb_entry(key, W._safetensors_entries(src)))
    values, _, _ = W._decode(plan, [s.read(offset, length) for s, offset, length in plan.reads])
    np.testing.assert_allclose(values, reference[:plan.rows], atol=1e-6)


# ---- never unpickle; typed errors -------------------------------------------------------------------------------------
class _Payload:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').write('unpickled')",))


def test_pickle_only_model_gives_none_without_unpickling(tmp_path, family, monkeypatch):
    marker = tmp_path / "unpickled.txt"
    payload = pickle.dumps(_Payload(marker))
    pickle.loads(payload)  # the payload is live: loading it writes the marker ...
    assert marker.exists()
    marker.unlink()
    model = tmp_path / "pickle-only"
    model.mkdir()
    (model / "pytorch_model.bin").write_bytes(payload)
    (model / "model.pt").write_bytes(payload)
    (model / "config.json").write_text((family["base"] / "config.json").read_text())

    def refuse(*args, **kwargs):
        raise AssertionError("something was unpickled")

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    assert W.sketch_files(model) is None
    assert not marker.exists()  # ... and sketching never did


def _write(path: Path, data: bytes) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "model.safetensors").write_bytes(data)
    return path


@pytest.mark.parametrize("damage", ["truncated", "huge-length", "bad-json", "outside", "tiny"])
def test_corrupt_safetensors_raise_a_one_line_typed_error(tmp_path, family, damage):
    data = (family["base"] / "model.safetensors").read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    if damage == "truncated":
        data = data[:len(data) // 3]
    elif damage == "huge-length":
        data = struct.pack("<Q", 10 ** 12) + data[8:]
    elif damage == "bad-json":
        data = data[:8] + b"{not json" + data[17:]
    elif damage == "outside":
        header = json.loads(data[8:8 + length])
        key = next(k for k in header if k != "__metadata__")
        header[key]["data_offsets"] = [0, 10 ** 9]
        text = json.dumps(header).encode()
        data = struct.pack("<Q", len(text)) + text + data[8 + length:]
    else:
        data = data[:5]
    with pytest.raises(CorruptModelFileError) as err:
        W.sketch_files(_write(tmp_path / damage, data))
    assert "\n" not in str(err.value) and "model.safetensors" in str(err.value)


def _gguf_with(path: Path, type_name: str) -> Path:
    import gguf

    qtype = gguf.GGMLQuantizationType[type_name]
    block, type_size = gguf.GGML_QUANT_SIZES[qtype]
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_block_count(1)
    raw = np.random.default_rng(0).integers(0, 255, (64, 128 // block * type_size), dtype=np.uint8)
    writer.add_tensor("blk.0.attn_v.weight", raw, raw_shape=raw.shape, raw_dtype=qtype)
    writer.add_tensor("blk.0.attn_norm.weight", np.ones(128, np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_gguf_with_an_unsupported_type_raises_a_typed_error(tmp_path):
    with pytest.raises(W.UnsupportedWeightsError, match="Q8_1") as err:
        W.sketch_files(_gguf_with(tmp_path / "q81.gguf", "Q8_1"))
    assert isinstance(err.value, CorruptModelFileError) and "\n" not in str(err.value)
    # an unknown type id (a newer llama.cpp type): patch the tensor's type field in the header
    path = _gguf_with(tmp_path / "unknown.gguf", "Q8_1")
    data = bytearray(path.read_bytes())
    name = b"blk.0.attn_v.weight"
    at = data.index(struct.pack("<Q", len(name)) + name) + 8 + len(name) + 4 + 16
    assert struct.unpack_from("<I", data, at)[0] == 9  # Q8_1's id
    struct.pack_into("<I", data, at, 99)
    path.write_bytes(bytes(data))
    with pytest.raises(W.UnsupportedWeightsError, match="ggml-type-99"):
        W.sketch_files(path)


def test_truncated_or_foreign_gguf_raises_corrupt(tmp_path, family):
    data = family["gguf-Q4_1"].read_bytes()
    (tmp_path / "cut.gguf").write_bytes(data[:2000])
    with pytest.raises(CorruptModelFileError, match="truncated"):
        W.sketch_files(tmp_path / "cut.gguf")
    (tmp_path / "tail.gguf").write_bytes(data[:len(data) - 5000])
    with pytest.raises(CorruptModelFileError):
        W.sketch_files(tmp_path / "tail.gguf")
    (tmp_path / "foreign.gguf").write_bytes(b"NOPE" + data[4:])
    with pytest.raises(CorruptModelFileError, match="bad magic"):
        W.sketch_files(tmp_path / "foreign.gguf")


def test_a_gguf_dir_and_a_model_without_weights(tmp_path, family, sketches):
    gguf_dir = tmp_path / "gguf-dir"
    gguf_dir.mkdir()
    (gguf_dir / "m.Q4_1.gguf").write_bytes(family["gguf-Q4_1"].read_bytes())
    assert W.sketch_files(gguf_dir)["tensors"] == sketches["gguf-Q4_1"]["tensors"]
    (tmp_path / "empty").mkdir()
    assert W.sketch_files(tmp_path / "empty") is None
    with pytest.raises(HfDnaError):
        W.sketch_files(tmp_path / "missing")


# ---- the Hub: byte ranges on the local Hub server ---------------------------------------------------------------------
@pytest.fixture()
def served_bytes(monkeypatch):
    """Counts the bytes the local Hub server sends for each resolved weight file (independent of the sketcher)."""
    from tests import hub_server

    served: dict[str, list[int]] = {}
    original = hub_server._Handler._send

    def send(self, status, body=b"", headers=None, content_type="application/json"):
        path = self.path.split("?")[0]
        if "/resolve/" in path and self.command == "GET":
            served.setdefault(path.rsplit("/", 1)[-1], []).append(len(body))
        return original(self, status, body, headers, content_type)

    monkeypatch.setattr(hub_server._Handler, "_send", send)
    return served


def _repo_files(path: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in path.iterdir() if p.is_file()}


@pytest.fixture(scope="module")
def wide16(tmp_path_factory) -> dict[str, Path]:
    """16 layers, 256 wide, vocab 4096: bf16 safetensors in 4 shards (~20 MB) and a Q4_1 GGUF (~6 MB)."""
    import torch

    root = tmp_path_factory.mktemp("wide16")
    with torch.random.fork_rng():
        model = tiny_llama(3, hidden=256, intermediate=512, layers=16, vocab=4096)
    local = save(model, root / "safetensors", dtype="bfloat16", max_shard_size="6MB")
    return {"safetensors": local, "gguf": write_gguf(local, root / "wide16.Q4_1.gguf", "Q4_1")}


def test_sketch_hub_equals_sketch_files_and_reads_few_bytes(local_hub, wide16, served_bytes):
    local = wide16["safetensors"]
    assert (local / "model.safetensors.index.json").is_file()
    files = _repo_files(local)
    repo_id = local_hub.make_model(files=files)
    remote = W.sketch_hub(repo_id)
    expected = W.sketch_files(local)
    assert remote["tensors"] == expected["tensors"] and remote["layers"] == expected["layers"]
    assert remote["repo_id"] == repo_id and len(remote["revision"]) == 40
    weights = {n: len(d) for n, d in files.items() if n.endswith(".safetensors")}
    assert len(weights) >= 3
    total_served = sum(sum(v) for n, v in served_bytes.items() if n in weights)
    assert total_served == remote["bytes_read"] - len(files["model.safetensors.index.json"]) - len(files["config.json"])
    assert total_served < 0.05 * sum(weights.values())
    assert all(max(served_bytes[n]) < size for n, size in weights.items())  # never a whole file


def test_sketch_hub_reads_gguf_by_ranges(local_hub, wide16, served_bytes):
    data = wide16["gguf"].read_bytes()
    repo_id = local_hub.make_model(files={"model.Q4_1.gguf": data, "README.md": "# q\n"})
    remote = W.sketch_hub(repo_id)
    local = W.sketch_files(wide16["gguf"])
    assert remote["tensors"] == local["tensors"] and remote["format"] == "gguf"
    assert sum(served_bytes["model.Q4_1.gguf"]) == remote["bytes_read"] < 0.1 * len(data)
    safetensors = W.sketch_files(wide16["safetensors"])
    assert W.compare_sketches(remote, safetensors)["relation"] == "near-identical"


def test_sketch_hub_pickle_only_repo_is_none_without_fetching_it(local_hub, served_bytes):
    repo_id = local_hub.make_model(files={"pytorch_model.bin": pickle.dumps({"w": 1}), "config.json": "{}"})
    assert W.sketch_hub(repo_id) is None
    assert "pytorch_model.bin" not in served_bytes


def test_sketch_hub_typed_hub_errors(local_hub, family, no_token):
    files = _repo_files(family["base"])
    gated = local_hub.make_model(files=files, gated=True)
    with pytest.raises(GatedRepoError):
        W.sketch_hub(gated)
    assert W.sketch_hub(gated, token=local_hub.token)["tensors"] == W.sketch_files(family["base"])["tensors"]
    with pytest.raises(RepoNotFoundError):
        W.sketch_hub(f"{local_hub.org}/no-such-model")


def test_hub_read_file_range_returns_exact_bytes(local_hub):
    from hf_dna import hub

    data = bytes(range(256)) * 40
    repo_id = local_hub.make_model(files={"blob.safetensors": data})
    sha, sizes = hub.repo_file_sizes(repo_id)
    assert sizes["blob.safetensors"] == len(data) and len(sha) == 40
    assert hub.read_file_range(repo_id, "blob.safetensors", 1000, 300, revision=sha) == data[1000:1300]
    assert hub.read_file_range(repo_id, "blob.safetensors", len(data) - 10, 100) == data[-10:]
    assert hub.file_size(repo_id, "blob.safetensors", revision=sha) == len(data)
    with pytest.raises(RepoNotFoundError):
        hub.read_file_range(repo_id, "missing.safetensors", 0, 10)
