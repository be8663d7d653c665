"""`hf-dna scan` on a local 2-CPU Ray, and `hf-dna reference build --ray`: the serial results, bit for bit.

One Ray for the module (``ray.init(num_cpus=2)``); the tiny models the tests build; a small calibrated
reference made with the real encoder from texts (4 topic families, `rand-en-4` probes).
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest
from click.testing import CliRunner

ray = pytest.importorskip("ray")

from hf_dna.cli import main
from hf_dna.pipeline.extract import extract
from hf_dna.pipeline.responses import GenerationSettings
from hf_dna.reference.store import ReferenceStore
from hf_dna.scan import LocalOutput, gpus_for, scan, verdict_path
from hf_dna.scan.catalogue import hub_weight_bytes, model_list

PROBES = "rand-en-4"
# float32: the bit-for-bit checks must not hinge on bf16 rounding; the paper's seeded sampling, as the audit uses
SETTINGS = GenerationSettings.paper(max_new_tokens=8, batch_size=4, dtype="float32")
GEN_ARGS = ["--max-new-tokens", "8", "--batch-size", "4", "--dtype", "float32"]
MODELS = ("parent", "child", "unrelated", "gpt2")
TOPICS = {
    "cats": ["The cat purrs on the sofa", "Kittens chase a ball of wool", "My cat sleeps in the sun all day"],
    "money": ["Stocks fell as interest rates rose", "The bank raised its mortgage rates", "Investors sold bonds"],
    "space": ["The rocket reached orbit at dawn", "Astronomers found a new exoplanet", "The moon landing was live"],
    "food": ["Bake the bread for forty minutes", "Add salt and pepper to the soup", "Fresh pasta needs eggs"],
}


def topic_texts(topic: str, variant: int) -> list[str]:
    lines = TOPICS[topic]
    return [f"{lines[(p + variant) % 3]}. {lines[(p + 2 * variant + 1) % 3].lower()}." for p in range(4)]


@pytest.fixture(scope="module")
def local_ray():
    """A 2-CPU Ray for this module; records carry a fixed created_at (SOURCE_DATE_EPOCH, inherited by workers).
    The serial runs use one torch thread, as each 1-CPU Ray task does: float32 sums depend on the thread count."""
    old = os.environ.get("SOURCE_DATE_EPOCH")
    old_threads = os.environ.get("HF_DNA_NUM_THREADS")
    os.environ["SOURCE_DATE_EPOCH"] = "1700000000"
    os.environ["HF_DNA_NUM_THREADS"] = "1"
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=200 * 1024 * 1024, logging_level="ERROR",
             log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()
        for name, value in (("SOURCE_DATE_EPOCH", old), ("HF_DNA_NUM_THREADS", old_threads)):
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture(scope="module")
def responses_and_lineage(tmp_path_factory):
    """A responses file (4 topic families x 3 models, rand-en-4) and its lineage CSV."""
    out = tmp_path_factory.mktemp("scan-ref-src")
    rows, lineage = [], ["model_id,family,parent,relation,confidence,note"]
    for topic in TOPICS:
        for variant, (suffix, parent) in enumerate([("base", ""), ("chat", f"org/{topic}-base"),
                                                    ("v2", f"org/{topic}-base")]):
            model_id = f"org/{topic}-{suffix}"
            rows += [{"model_id": model_id, "probe": p, "response": t} for p, t in enumerate(topic_texts(topic, variant))]
            lineage.append(f"{model_id},{topic},{parent},{'finetune' if parent else 'base'},high,")
    (out / "responses.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    (out / "lineage.csv").write_text("\n".join(lineage) + "\n", encoding="utf-8")
    return out / "responses.jsonl", out / "lineage.csv"


@pytest.fixture(scope="module")
def reference(local_ray, responses_and_lineage, tmp_path_factory):
    """The calibrated reference store dir, built serially."""
    from hf_dna.reference.build import build_store

    responses, lineage = responses_and_lineage
    directory = tmp_path_factory.mktemp("scan-ref") / "store"
    build_store([responses], PROBES, str(lineage), directory)
    return str(directory)


@pytest.fixture(scope="module")
def serial(local_ray, tiny_models):
    """model id -> the record `extract` makes in this process (no response cache)."""
    return {name: extract(str(tiny_models[name]), PROBES, settings=SETTINGS, use_cache=False, progress=False)
            for name in MODELS}


def stored(directory) -> dict[str, dict]:
    return {r.model_id: r.to_dict() for r in ReferenceStore.load(directory).records}


def differing(got: dict[str, dict], want: dict[str, dict]) -> dict[str, list[str]]:
    """Per model, the record fields that differ (empty when equal): what an inequality is about."""
    out = {m: sorted(k for k in set(got.get(m, {})) | set(want.get(m, {}))
                     if got.get(m, {}).get(k) != want.get(m, {}).get(k)) for m in set(got) | set(want)}
    return {m: keys for m, keys in out.items() if keys}


def test_scan_on_ray_equals_serial_and_skips_on_rerun(local_ray, tiny_models, reference, serial, tmp_path):
    listing = tmp_path / "models.txt"
    listing.write_text("# the four tiny models\n" + "".join(f"{tiny_models[n]}\n" for n in MODELS) + "\n")
    out = tmp_path / "out"
    args = ["scan", "--models", str(listing), "--ray", "auto", "--reference", reference, "-o", str(out), *GEN_ARGS,
            "--quiet"]
    first = CliRunner().invoke(main, args)
    assert first.exit_code == 0, first.output
    assert "4 extracted, 0 already there, 4 audited" in first.output
    assert differing(stored(out), {name: record.to_dict() for name, record in serial.items()}) == {}  # all of it
    for name in MODELS:
        verdict = json.loads((out / verdict_path(name)).read_text())
        assert verdict["record"]["dna"] == serial[name].dna and verdict["verdict"] in ("clean", "flagged")
    files = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    assert len(files) == 2 + 2 * len(MODELS) and not [p for p in files if p.name.endswith(".tmp")]

    again = scan(models_file=str(listing), ray_address="auto", reference=reference, out_dir=out, settings=SETTINGS,
                 progress=False)
    assert again.tasks == 0 and again.extracted == [] and sorted(again.skipped) == sorted(MODELS)
    assert again.written == [] and {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == files

    (out / verdict_path("gpt2")).unlink()  # a verdict lost: made again from the stored record, no extraction
    repaired = scan(models_file=str(listing), ray_address="auto", reference=reference, out_dir=out,
                    settings=SETTINGS, progress=False)
    assert repaired.tasks == 0 and repaired.written == [verdict_path("gpt2")] and repaired.audited.keys() == {"gpt2"}


def test_reference_build_on_ray_equals_serial(local_ray, responses_and_lineage, reference, tmp_path):
    responses, lineage = responses_and_lineage
    out = tmp_path / "ray-store"
    result = CliRunner().invoke(main, ["reference", "build", str(responses), "--probes", PROBES, "--lineage",
                                       str(lineage), "-o", str(out), "--ray", "auto", "--quiet"])
    assert result.exit_code == 0, result.output
    assert stored(out) == stored(reference)
    assert ReferenceStore.load(out).calibration == ReferenceStore.load(reference).calibration


def test_killed_worker_is_retried_and_nothing_is_written_twice(local_ray, tiny_models, reference, serial, tmp_path,
                                                                monkeypatch):
    marker = str(tmp_path / "child-worker-was-killed")

    def crash_once(job):  # pickled by value to the worker: kills its own worker process the first time
        import os

        from hf_dna.scan.ray_tasks import extract_task

        if job.model.endswith("child") and not os.path.exists(marker):
            open(marker, "w").close()
            os._exit(1)
        return extract_task(job)

    writes = []
    real_write = LocalOutput.write_record
    monkeypatch.setattr(LocalOutput, "write_record", lambda self, rec: writes.append(rec.model_id) or real_write(self, rec))
    out = tmp_path / "out"
    result = scan([str(tiny_models[n]) for n in ("parent", "child")], ray_address="auto", reference=reference,
                  out_dir=out, settings=SETTINGS, cache_dir=str(tmp_path / "cache"), progress=False, task=crash_once)
    assert os.path.exists(marker)  # the first attempt did die
    assert result.failed == {} and sorted(result.extracted) == ["child", "parent"] and result.tasks == 2
    assert sorted(writes) == ["child", "parent"]  # one write per model, though "child" ran twice
    assert len(result.written) == len(set(result.written)) == 4
    assert differing(stored(out), {n: serial[n].to_dict() for n in ("parent", "child")}) == {}


def test_scan_to_a_hub_dataset_pushes_once(local_ray, tiny_models, reference, serial, local_hub, tmp_path):
    from hf_dna import hub
    from hf_dna.reference.sync import pull

    repo = local_hub.unique_id("dna-scan")
    model = str(tiny_models["gpt2"])
    result = scan([model], ray_address="auto", reference=reference, repo=repo, settings=SETTINGS,
                  cache_dir=str(tmp_path / "cache"), progress=False, flush_interval_s=0)
    assert result.failed == {} and result.extracted == ["gpt2"]
    pull(repo, tmp_path / "pulled")
    assert stored(tmp_path / "pulled") == {"gpt2": serial["gpt2"].to_dict()}
    assert verdict_path("gpt2") in hub.list_repo_files(repo, repo_type="dataset")
    head = hub.head_sha(repo, repo_type="dataset")
    again = scan([model], ray_address="auto", reference=reference, repo=repo, settings=SETTINGS, progress=False)
    assert again.tasks == 0 and again.skipped == ["gpt2"] and hub.head_sha(repo, repo_type="dataset") == head


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_without_ray_the_scan_runs_here(local_ray, tiny_models, serial, tmp_path):
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["scan", str(tiny_models["gpt2"]), "--no-audit", "--probes", PROBES, "-o",
                                       str(out), *GEN_ARGS, "--quiet"])
    assert result.exit_code == 0, result.output
    assert "1 extracted, 0 already there, 0 audited" in result.output and not (out / "verdicts").exists()
    assert stored(out) == {"gpt2": serial["gpt2"].to_dict()}


def test_dead_ray_address_is_one_line_error_and_writes_nothing(tiny_models, tmp_path):
    out = tmp_path / "out"
    address = f"127.0.0.1:{_free_port()}"
    done = subprocess.run([sys.executable, "-m", "hf_dna", "scan", str(tiny_models["gpt2"]), "--ray", address,
                           "--no-audit", "-o", str(out)], check=False, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert done.stderr.splitlines() == [done.stderr.strip()]
    assert done.stderr.startswith(f"Error: no Ray cluster answers at {address}")
    assert not out.exists()


def test_ray_not_installed_is_one_line_error(tiny_models, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now fails as it does without the extra
    responses = tmp_path / "r.jsonl"
    responses.write_text('{"probe": 0, "response": "x"}\n')
    for args in (["scan", str(tiny_models["gpt2"]), "--ray", "auto", "-o", str(tmp_path / "out")],
                 ["reference", "build", str(responses), "--probes", "rand-en-1", "-o", str(tmp_path / "s"),
                  "--ray", "auto"]):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 1 and result.output.count("\n") == 1, result.output
        assert result.output.startswith("Error: --ray needs Ray: install hf-dna[ray]")
    assert not (tmp_path / "out").exists() and not (tmp_path / "s").exists()


def test_gpus_follow_the_weights():
    gib = 1 << 30
    assert gpus_for(10 * gib, 80 * gib, max_gpus=0) == 0  # no GPUs: CPU tasks
    assert gpus_for(None, 80 * gib, max_gpus=8) == 1  # size unknown: a whole GPU
    assert gpus_for(int(0.3 * gib), 80 * gib, max_gpus=8) == 0.25  # small models share a GPU
    assert gpus_for(40 * gib, 80 * gib, max_gpus=8) == 0.75  # 40 GiB x 1.3 + 1 GiB of 80
    assert gpus_for(60 * gib, 80 * gib, max_gpus=8) == 1
    assert gpus_for(140 * gib, 80 * gib, max_gpus=8) == 3
    assert gpus_for(1000 * gib, 80 * gib, max_gpus=4) == 4  # no node has more: device_map spreads it
    assert hub_weight_bytes({"a.safetensors": 3, "b.safetensors": 4, "c.bin": 100, "x.gguf": 9}) == 7
    assert hub_weight_bytes({"x.gguf": 9, "y.gguf": 5}, gguf_file="y.gguf") == 5


def test_models_file_and_one_source_only(tmp_path):
    listing = tmp_path / "m.txt"
    listing.write_text("org/a  # first\n\n# a comment\norg/b\norg/a\n")
    assert model_list(models_file=listing) == ["org/a", "org/b"]
    result = CliRunner().invoke(main, ["scan", "org/a", "--models", str(listing), "-o", str(tmp_path / "o")])
    assert result.exit_code == 1 and result.output.startswith("Error: give exactly one of")
