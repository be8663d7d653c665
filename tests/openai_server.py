"""A small OpenAI-compatible chat-completions server for the tests and benchmarks (never imported by the product).

It answers ``POST /v1/chat/completions`` and ``GET /v1/models`` like vLLM / TGI / OpenAI do, with the answers of an
*answerer* (a callable ``(prompt, params) -> (text, finish_reason)``): `echo_answerer` (deterministic, instant or
with a fixed latency) or `SmolLM2Answerer` (the shipped SmolLM2-135M-Instruct GGUF, really generating).

Fault injection (`faults`: a callable ``(prompt, attempt) -> kind | None``, attempt = 1 for the first request of
that prompt): ``"429"`` (with ``Retry-After``), ``"500"``, ``"503"``, ``"hang"`` (no answer for `hang_s` seconds,
then a late 200), ``"malformed"`` (200 with a broken JSON body), ``"drop"`` (connection closed without a reply),
``"content_filter"`` (finish_reason content_filter, content null), ``"empty"``, ``"refusal"``.

Bookkeeping, per prompt: `requests` (every request), `answered` (answers delivered with a 200 and a valid body).
Auth: with `api_key` set, anything else than ``Authorization: Bearer <api_key>`` gets a 401 whose message echoes the
key received (as OpenAI's "Incorrect API key provided: ..." does), so the tests can check the client scrubs it.
`reject_params`: request fields answered with a 400 "Unsupported parameter" (as some providers do for ``seed``).
"""
from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

Answerer = Callable[[str, dict[str, Any]], tuple[str, str]]
Faults = Callable[[str, int], "str | None"]


def echo_answerer(latency_s: float = 0.0) -> Answerer:
    """A deterministic answerer: the answer names the prompt and the sampling settings; `latency_s` per request."""

    def answer(prompt: str, params: dict[str, Any]) -> tuple[str, str]:
        if latency_s:
            time.sleep(latency_s)
        words = prompt.split()
        text = f"echo: {' '.join(reversed(words))} (t={params.get('temperature')})"
        limit = params.get("max_tokens")
        if isinstance(limit, int) and len(text.split()) > limit:
            return " ".join(text.split()[:limit]), "length"
        return text, "stop"

    return answer


class SmolLM2Answerer:
    """SmolLM2-135M-Instruct (the shipped GGUF) behind the server: the prompt as one user turn of its chat template,
    greedy at temperature 0, else seeded sampling. Loaded once (~25 s); one generation at a time."""

    def __init__(self, gguf_path: str | None = None, *, model: Any = None, tokenizer: Any = None):
        """From the GGUF file, or from a model and tokenizer already loaded (the tests' session fixture)."""
        if model is None:
            from pathlib import Path

            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer

            path = Path(gguf_path)
            tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
            model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
        self.model, self.tokenizer = model, tokenizer
        self.model.eval()
        self.lock = threading.Lock()
        self.calls = 0

    def __call__(self, prompt: str, params: dict[str, Any]) -> tuple[str, str]:
        import torch

        ids = self.tokenizer.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                                 return_tensors="pt", return_dict=True)
        max_new = int(params.get("max_tokens") or 16)
        temperature = float(params.get("temperature") if params.get("temperature") is not None else 1.0)
        kwargs: dict[str, Any] = {"max_new_tokens": max_new, "pad_token_id": self.tokenizer.eos_token_id}
        if temperature > 0:
            kwargs.update(do_sample=True, temperature=temperature, top_p=float(params.get("top_p") or 1.0))
        else:
            kwargs.update(do_sample=False)
        with self.lock, torch.no_grad():
            self.calls += 1
            if temperature > 0:
                torch.manual_seed(int(params.get("seed") or 0))
            out = self.model.generate(**ids, **kwargs)
        new = out[0, ids["input_ids"].shape[1]:]
        finish = "length" if len(new) >= max_new and new[-1] != self.tokenizer.eos_token_id else "stop"
        return self.tokenizer.decode(new, skip_special_tokens=True), finish


class OpenAIServer:
    """``with OpenAIServer(answerer) as server:`` -> `server.base_url` (``http://127.0.0.1:PORT/v1``)."""

    def __init__(self, answerer: Answerer | None = None, *, models: tuple[str, ...] = ("smollm2-local",),
                 api_key: str | None = None, faults: Faults | None = None, retry_after: str = "1",
                 hang_s: float = 2.0, reject_params: tuple[str, ...] = ()):
        self.answerer = answerer or echo_answerer()
        self.models = tuple(models)
        self.api_key = api_key
        self.faults = faults
        self.retry_after = retry_after
        self.hang_s = hang_s
        self.reject_params = tuple(reject_params)
        self.lock = threading.Lock()
        self.requests: Counter[str] = Counter()  # prompt -> requests received
        self.answered: Counter[str] = Counter()  # prompt -> valid answers delivered
        self.faulted: Counter[str] = Counter()  # fault kind -> times injected
        self.bodies: list[dict[str, Any]] = []  # every chat-completions request body, in arrival order
        self.arrivals: dict[str, list[float]] = {}  # prompt -> time.monotonic() of each request
        self.auth_headers: list[str] = []
        self._httpd: ThreadingHTTPServer | None = None

    # -- lifecycle ---------------------------------------------------------------------------------------------
    def start(self) -> Self:
        server = self

        class Handler(_Handler):
            owner = server

        httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        httpd.daemon_threads = True
        httpd.block_on_close = False  # a hanging handler must not hold up shutdown
        self._httpd = httpd
        threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._httpd is not None, "server not started"
        return self._httpd.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def reset_counts(self) -> None:
        with self.lock:
            self.requests.clear()
            self.answered.clear()
            self.faulted.clear()
            self.bodies.clear()
            self.arrivals.clear()
            self.auth_headers.clear()


def _completion(model: str, text: str | None, finish: str, refusal: str | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if refusal is not None:
        message["refusal"] = refusal
    return {"id": f"chatcmpl-{time.monotonic_ns()}", "object": "chat.completion", "created": int(time.time()),
            "model": model, "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": {"prompt_tokens": 0, "completion_tokens": len((text or "").split()), "total_tokens": 0}}


class _Handler(BaseHTTPRequestHandler):
    owner: OpenAIServer
    protocol_version = "HTTP/1.1"  # keep-alive, as real servers do
    disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms delayed-ACK stall

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _error(self, status: int, message: str, kind: str, headers: dict[str, str] | None = None) -> None:
        self._send(status, {"error": {"message": message, "type": kind, "code": status}}, headers)

    def _authorised(self) -> bool:
        auth = self.headers.get("Authorization", "")
        with self.owner.lock:
            self.owner.auth_headers.append(auth)
        if self.owner.api_key is None or auth == f"Bearer {self.owner.api_key}":
            return True
        given = auth.removeprefix("Bearer ")
        self._error(401, f"Incorrect API key provided: {given}. You can find your API key in your account.",
                    "invalid_request_error")
        return False

    def do_GET(self) -> None:
        if self.path.rstrip("/") != "/v1/models":
            self._error(404, f"no route {self.path}", "not_found")
            return
        if self._authorised():
            self._send(200, {"object": "list", "data": [{"id": m, "object": "model", "owned_by": "tests"}
                                                        for m in self.owner.models]})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if self.path.rstrip("/") != "/v1/chat/completions":
            self._error(404, f"no route {self.path}", "not_found")
            return
        if not self._authorised():
            return
        try:
            body = json.loads(raw)
            prompt = str(body["messages"][-1]["content"])
            model = str(body.get("model"))
        except (ValueError, KeyError, IndexError, TypeError):
            self._error(400, "invalid request body", "invalid_request_error")
            return
        server = self.owner
        with server.lock:
            server.bodies.append(body)
            server.requests[prompt] += 1
            server.arrivals.setdefault(prompt, []).append(time.monotonic())
            attempt = server.requests[prompt]
        if model not in server.models:
            self._error(404, f"The model `{model}` does not exist or you do not have access to it.", "not_found")
            return
        rejected = [p for p in server.reject_params if p in body]
        if rejected:
            self._error(400, f"Unsupported parameter: '{rejected[0]}' is not supported with this model.",
                        "invalid_request_error")
            return
        kind = server.faults(prompt, attempt) if server.faults else None
        if kind:
            with server.lock:
                server.faulted[kind] += 1
        if kind == "drop":
            self.close_connection = True
            self.connection.close()  # no status line at all: the client sees the connection end
            return
        if kind == "429":
            self._error(429, "Rate limit reached, retry later.", "rate_limit", {"Retry-After": server.retry_after})
            return
        if kind in ("500", "503"):
            self._error(int(kind), "upstream failure", "server_error")
            return
        if kind == "malformed":
            self._send(200, b'{"id": "chatcmpl-x", "choices": [{"index": 0, "message": {"role": "assis')
            return
        if kind == "hang":
            time.sleep(server.hang_s)  # past the client's timeout: what comes after is never read
            self.close_connection = True
            try:
                self._send(200, _completion(model, "too late", "stop"))
            except OSError:
                pass
            return
        if kind == "content_filter":
            payload = _completion(model, None, "content_filter")
        elif kind == "empty":
            payload = _completion(model, "", "stop")
        elif kind == "refusal":
            payload = _completion(model, None, "stop", refusal="I can't help with that.")
        else:
            params = {k: body.get(k) for k in ("max_tokens", "temperature", "top_p", "seed")}
            text, finish = server.answerer(prompt, params)
            payload = _completion(model, text, finish)
        self._send(200, payload)
        with server.lock:
            server.answered[prompt] += 1
