"""`--backend api`: chat completions through the real `huggingface_hub.InferenceClient` against a local
OpenAI-compatible server (`tests/openai_server.py`).

Fast tests use a deterministic echo answerer with injected faults (429 + Retry-After, 500/503, a hang past the
timeout, malformed JSON, a dropped connection, content_filter / empty / refusal); the slow ones put the shipped
SmolLM2-135M-Instruct GGUF behind the server. Nothing is mocked: the server counts every request per prompt.
"""
from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from pathlib import Path
from zlib import crc32

import pytest
from click.testing import CliRunner

from hf_dna.cli import main
from hf_dna.errors import ApiError, InvalidInputError
from hf_dna.pipeline.backends.api import ApiSettings, api_responses, public_url
from hf_dna.pipeline.probes import load_probe_set
from hf_dna.pipeline.record import read_records
from hf_dna.pipeline.responses import GenerationSettings
from tests.openai_server import OpenAIServer, SmolLM2Answerer, echo_answerer

KEY = "sk-test-S3CRET-key-0123456789abcdef"
HF_SECRET = "hf_NeverSendThisTokenAnywhere0123456789"
MODEL = "smollm2-local"
FAST = {"timeout": 0.5, "backoff": 0.02, "max_backoff": 2.0}


@pytest.fixture
def server(monkeypatch):
    monkeypatch.setenv("TEST_API_KEY", KEY)
    with OpenAIServer(echo_answerer(), api_key=KEY, hang_s=1.0) as srv:
        yield srv


def api(srv: OpenAIServer, **kw) -> ApiSettings:
    return ApiSettings(base_url=srv.base_url, api_key_env="TEST_API_KEY", **{**FAST, **kw})


def echo(prompt: str, temperature=0.0, max_tokens=None) -> str:
    return echo_answerer()(prompt, {"temperature": temperature, "max_tokens": max_tokens})[0]


def wait_for_workers(timeout: float = 10.0) -> None:
    """Requests still in flight after an interrupt finish (and reach the cache) before the run resumes."""
    deadline = time.monotonic() + timeout
    while any(t.name.startswith("hf-dna-api") for t in threading.enumerate()) and time.monotonic() < deadline:
        time.sleep(0.02)


def test_settings_are_sent_and_recorded(server, tmp_path):
    probes = load_probe_set("rand-en-4")
    greedy = api_responses(MODEL, probes, GenerationSettings(max_new_tokens=64), api(server), cache_dir=tmp_path,
                           progress=False)
    assert {json.dumps({k: b.get(k) for k in ("max_tokens", "temperature", "top_p", "seed")})
            for b in server.bodies} == {json.dumps({"max_tokens": 64, "temperature": 0.0, "top_p": None, "seed": None})}
    assert all(b["messages"] == [{"role": "user", "content": b["messages"][0]["content"]}] for b in server.bodies)
    g = greedy.generation
    assert (g["backend"], g["base_url"], g["model"], g["sent"], g["rejected"]) == (
        "api", server.base_url, MODEL, {"max_tokens": 64, "temperature": 0.0}, [])
    assert greedy.texts == [echo(p) for p in probes.prompts] and g["status"] == ["stop"] * 4
    server.reset_counts()
    sampled = api_responses(MODEL, probes, GenerationSettings.paper(max_new_tokens=5), api(server),
                            cache_dir=tmp_path, progress=False)
    assert sampled.generation["sent"] == {"max_tokens": 5, "temperature": 0.7, "top_p": 0.9, "seed": 42}
    assert len(server.bodies) == 4 and all(b["seed"] == 42 and b["top_p"] == 0.9 for b in server.bodies)
    assert sampled.generation["status"] == ["length"] * 4  # the echo answer is longer than 5 words


FAULTS = {0: "429", 1: "500", 2: "503", 3: "malformed", 4: "drop", 5: "hang", 6: "content_filter", 7: "empty",
          8: "refusal", 9: "500"}


def test_every_fault_is_survived_and_nothing_is_asked_twice(server, tmp_path):
    probes = load_probe_set("rand-en-12")
    index = {p: i for i, p in enumerate(probes.prompts)}
    # the first request of probes 0-5 and 9 fails (9 twice); 6-8 answer with what they are; 10-11 are clean
    server.faults = lambda p, attempt: FAULTS.get(index[p]) if attempt <= (2 if index[p] == 9 else 1) else None
    start = time.monotonic()
    out = api_responses(MODEL, probes, None, api(server, concurrency=4), cache_dir=tmp_path, progress=False)
    status = out.generation["status"]
    assert status[6:9] == ["content_filter", "empty", "refusal"] and out.texts[6:8] == ["", ""]
    assert out.texts[8] == "I can't help with that."
    assert [t for i, t in enumerate(out.texts) if i not in (6, 7, 8)] == [
        echo(p) for i, p in enumerate(probes.prompts) if i not in (6, 7, 8)]
    assert set(status) - {"content_filter", "empty", "refusal"} == {"stop"}
    assert out.generation["status_counts"] == {"content_filter": 1, "empty": 1, "refusal": 1, "stop": 9}
    assert dict(server.faulted) == {"429": 1, "500": 3, "503": 1, "malformed": 1, "drop": 1, "hang": 1,
                                    "content_filter": 1, "empty": 1, "refusal": 1}
    assert all(server.answered[p] == 1 for p in probes.prompts)  # one answer delivered per prompt
    first, second = server.arrivals[probes.prompts[0]]
    assert second - first >= 0.95  # Retry-After: 1 was honoured
    assert time.monotonic() - start < 10
    before = sum(server.requests.values())
    again = api_responses(MODEL, probes, None, api(server), cache_dir=tmp_path, progress=False)
    assert sum(server.requests.values()) == before  # everything came from the cache
    assert again.texts == out.texts and again.generation == out.generation


@pytest.fixture()
def terminal_sigint():
    """Ctrl-C as at a terminal: a test run started in the background by a non-interactive shell inherits SIGINT
    ignored (Python then keeps it ignored), and the interrupt below would never arrive."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_resume_after_interrupt_asks_only_what_is_missing(tmp_path, monkeypatch, terminal_sigint):
    monkeypatch.setenv("TEST_API_KEY", KEY)
    probes = load_probe_set("rand-en-16")
    answered = []
    base = echo_answerer(latency_s=0.05)

    def interrupting(prompt, params):
        answered.append(prompt)
        if len(answered) == 6:
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C while the run waits on its workers
        return base(prompt, params)

    with OpenAIServer(interrupting, api_key=KEY) as srv:
        with pytest.raises(KeyboardInterrupt):
            api_responses(MODEL, probes, None, api(srv, concurrency=2), cache_dir=tmp_path, progress=False)
            time.sleep(5)  # the interrupt lands in the wait above, never here
        wait_for_workers()
        cached = len(list(tmp_path.rglob("batch-*.json")))
        assert 6 <= cached < 16
        first_run = sum(srv.requests.values())
        out = api_responses(MODEL, probes, None, api(srv, concurrency=2), cache_dir=tmp_path, progress=False)
        assert sum(srv.requests.values()) - first_run == 16 - cached
        assert all(srv.answered[p] == 1 for p in probes.prompts)
    assert out.texts == [echo(p) for p in probes.prompts]


def test_a_run_stopped_by_errors_resumes(server, tmp_path):
    probes = load_probe_set("rand-en-8")
    broken = set(probes.prompts[4:])
    server.faults = lambda p, attempt: "503" if p in broken else None
    with pytest.raises(ApiError, match="no answer after 2 attempts"):
        api_responses(MODEL, probes, None, api(server, max_retries=1, concurrency=1), cache_dir=tmp_path,
                      progress=False)
    server.faults = None
    out = api_responses(MODEL, probes, None, api(server), cache_dir=tmp_path, progress=False)
    assert out.texts == [echo(p) for p in probes.prompts]
    assert all(server.answered[p] == 1 for p in probes.prompts)


def test_rate_limits_pause_every_worker_and_all_answers_arrive(server, tmp_path):
    """A 20% fault rate (429s with Retry-After, 500s, drops) at concurrency 8: all answered, once each."""
    probes = load_probe_set("rand-en-40")
    index = {p: i for i, p in enumerate(probes.prompts)}
    kinds = ["429", "500", "drop"]
    server.retry_after = "0.2"
    server.faults = lambda p, attempt: kinds[crc32(p.encode()) % 3] if attempt == 1 and index[p] % 5 == 0 else None
    out = api_responses(MODEL, probes, None, api(server, concurrency=8), cache_dir=tmp_path, progress=False)
    assert out.texts == [echo(p) for p in probes.prompts]
    assert all(server.answered[p] == 1 for p in probes.prompts)
    assert sum(server.faulted.values()) == 8 and sum(server.requests.values()) == 48


def test_a_rejected_parameter_is_dropped_and_recorded(server, tmp_path):
    server.reject_params = ("seed",)
    probes = load_probe_set("rand-en-6")
    out = api_responses(MODEL, probes, GenerationSettings.paper(max_new_tokens=50), api(server, concurrency=1),
                        cache_dir=tmp_path, progress=False)
    assert out.generation["rejected"] == ["seed"]
    assert out.generation["sent"] == {"max_tokens": 50, "temperature": 0.7, "top_p": 0.9}
    assert out.generation["requested"]["seed"] == 42
    assert sum("seed" in b for b in server.bodies) == 1  # refused once, never sent again
    assert out.texts == [echo(p, 0.7) for p in probes.prompts]
    again = api_responses(MODEL, probes, GenerationSettings.paper(max_new_tokens=50), api(server),
                          cache_dir=tmp_path, progress=False)
    assert again.generation["rejected"] == ["seed"]  # also when every answer comes from the cache


def test_public_url_drops_credentials():
    assert public_url("https://user:pw@api.example.com:8443/v1/?api_key=abc&x=1") == (
        "https://api.example.com:8443/v1?api_key=***&x=1")
    with pytest.raises(InvalidInputError, match="must not carry credentials"):
        ApiSettings(base_url="https://user:pw@api.example.com/v1")
    with pytest.raises(InvalidInputError):
        ApiSettings(base_url="localhost:8000")
    with pytest.raises(InvalidInputError):
        ApiSettings(api_key_env="sk-pasted-a-key-here!")


# --- the command line ------------------------------------------------------------------------------------------
TINY = ["--probes", "rand-en-4", "--max-new-tokens", "12", "--quiet"]


@pytest.fixture
def runner(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DNA_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_TOKEN", HF_SECRET)
    return CliRunner()


def _every_byte_under(root: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file())


def test_cli_extract_end_to_end_and_no_secret_anywhere(runner, server, tmp_path, caplog):
    out = tmp_path / "rec.json"
    with caplog.at_level(logging.DEBUG):
        result = runner.invoke(main, ["extract", MODEL, "--backend", "api", "--base-url", server.base_url, "--api-key-env",
                                      "TEST_API_KEY", "--concurrency", "2", *TINY, "-o", str(out)])
    assert result.exit_code == 0, result.output
    record = read_records(out)[0]
    g = record.generation
    assert record.model_id == MODEL and record.n_probes == 4 and record.revision == "api"
    assert (g["backend"], g["base_url"], g["status"]) == ("api", server.base_url, ["length"] * 4)  # 12 tokens
    assert set(server.auth_headers) == {f"Bearer {KEY}"}  # the named key was sent, the HF token never
    seen = result.output + caplog.text + out.read_text() + _every_byte_under(tmp_path / "cache").decode()
    assert KEY not in seen and HF_SECRET not in seen


def test_cli_the_hf_token_never_goes_to_another_host(runner, tmp_path, monkeypatch):
    with OpenAIServer(echo_answerer()) as srv:  # an open local server, like vLLM with no --api-key
        result = runner.invoke(main, ["extract", MODEL, "--backend", "api", "--base-url", srv.base_url, *TINY])
        assert result.exit_code == 0, result.output
        assert set(srv.auth_headers) == {""}  # no Authorization header at all
    assert json.loads(result.stdout)["generation"]["backend"] == "api"


@pytest.mark.parametrize("case, message", [
    ("unreachable", "unreachable"),
    ("wrong-key", "the key was refused (HTTP 401"),
    ("unknown-model", "no such model or endpoint (HTTP 404"),
    ("unset-key-variable", "--api-key-env NOPE_NOT_SET"),
    ("base-url-without-backend", "--base-url and --api-key-env need --backend api"),
    ("credentials-in-url", "--base-url must not carry credentials (http://127.0.0.1"),
])
def test_cli_bad_input_is_one_line_exit_1_and_no_record(runner, server, tmp_path, monkeypatch, case, message):
    monkeypatch.setenv("WRONG_KEY", KEY[:-4] + "XXXX")
    args = {"unreachable": [MODEL, "--backend", "api", "--base-url", "http://127.0.0.1:9/v1"],
            "wrong-key": [MODEL, "--backend", "api", "--base-url", server.base_url, "--api-key-env", "WRONG_KEY"],
            "unknown-model": ["no/such-model", "--backend", "api", "--base-url", server.base_url,
                              "--api-key-env", "TEST_API_KEY"],
            "unset-key-variable": [MODEL, "--backend", "api", "--base-url", server.base_url,
                                   "--api-key-env", "NOPE_NOT_SET"],
            "base-url-without-backend": [MODEL, "--base-url", server.base_url],
            "credentials-in-url": [MODEL, "--backend", "api", "--base-url",
                                   server.base_url.replace("http://", f"http://user:{KEY}@") + f"?api_key={KEY}"]}[case]
    out = tmp_path / "out.json"
    result = runner.invoke(main, ["extract", *args, *TINY, "-o", str(out)])
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("Error: ") and message in result.stderr, result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.output
    assert not out.exists() and not list(tmp_path.glob(".out.json*"))
    assert KEY[:-4] not in result.output and HF_SECRET not in result.output  # the server echoes a wrong key


def test_cli_audit_through_the_api(runner, server, tmp_path):
    from hf_dna.pipeline.extract import dna_from_texts
    from hf_dna.reference.store import ReferenceStore

    probes = load_probe_set("rand-en-4")
    records = [dna_from_texts("org/echo-base", [echo(p) for p in probes.prompts], probes),
               dna_from_texts("org/other", [f"cooking recipe {i} with garlic" for i in range(4)], probes)]
    ReferenceStore.create(tmp_path / "ref", records)
    result = runner.invoke(main, ["audit", MODEL, "--backend", "api", "--base-url", server.base_url,
                                  "--api-key-env", "TEST_API_KEY", "--reference", str(tmp_path / "ref"),
                                  "--base-model", "org/echo-base", "--format", "json", "--quiet",
                                  "--max-new-tokens", "40"])
    assert result.exit_code == 0, result.output
    verdict = json.loads(result.stdout)
    assert verdict["record"]["generation"]["backend"] == "api"
    assert verdict["record"]["generation"]["sent"]["temperature"] == 0.7  # the audit asks with the paper's settings
    assert len(server.bodies) == 4 and KEY not in result.output


# --- a real model behind the server ---------------------------------------------------------------------------
@pytest.fixture(scope="session")
def smollm2_server(smollm2_generator):
    """SmolLM2-135M-Instruct (loaded once per session) answering through the OpenAI-compatible server."""
    answerer = SmolLM2Answerer(model=smollm2_generator.model, tokenizer=smollm2_generator.tokenizer)
    with OpenAIServer(answerer) as srv:
        yield srv


@pytest.mark.slow
def test_smollm2_through_the_api_matches_local_generation(smollm2_server, smollm2_generator, tmp_path):
    """6 probes x 16 tokens, greedy: what the API returns is what hf-dna's transformers backend generates."""
    import copy
    import dataclasses

    probes = load_probe_set("rand-en-6")
    srv = smollm2_server
    srv.reset_counts()
    out = api_responses(MODEL, probes, GenerationSettings(max_new_tokens=16),
                        ApiSettings(base_url=srv.base_url, concurrency=2), cache_dir=tmp_path, progress=False)
    assert all(t.strip() for t in out.texts) and set(out.generation["status"]) <= {"stop", "length"}
    local_generator = copy.copy(smollm2_generator)  # the same loaded model, 16 new tokens
    local_generator.settings = dataclasses.replace(smollm2_generator.settings, max_new_tokens=16)
    ids = local_generator.prompt_ids(probes.prompts)
    local = [local_generator.generate_batch([seq], 0)[0] for seq in ids]
    same = sum(a.strip() == b.strip() for a, b in zip(out.texts, local))
    assert same >= 5, list(zip(out.texts, local))
    assert all(srv.answered[p] == 1 for p in probes.prompts)


@pytest.mark.slow
def test_smollm2_cli_extract_with_faults(runner, smollm2_server, tmp_path):
    """A real model under faults, through the command line: every answer obtained, none generated twice."""
    srv = smollm2_server
    srv.reset_counts()
    probes = load_probe_set("rand-en-6")
    kinds = {probes.prompts[1]: "500", probes.prompts[3]: "drop", probes.prompts[5]: "malformed"}
    srv.faults = lambda p, attempt: kinds.get(p) if attempt == 1 else None
    try:
        out = tmp_path / "smol.json"
        args = ["extract", MODEL, "--backend", "api", "--base-url", srv.base_url, "--probes", "rand-en-6",
                "--max-new-tokens", "16", "--quiet", "-o", str(out)]
        result = runner.invoke(main, args)
        assert result.exit_code == 0, result.output
        calls = srv.answerer.calls
        assert runner.invoke(main, args).exit_code == 0  # the second run is all cache
        assert srv.answerer.calls == calls
    finally:
        srv.faults = None
    record = read_records(out)[0]
    assert record.generation["sent"] == {"max_tokens": 16, "temperature": 0.0}
    assert all(srv.answered[p] == 1 for p in probes.prompts) and dict(srv.faulted) == {
        "500": 1, "drop": 1, "malformed": 1}
