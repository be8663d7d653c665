"""The API backend: a model's answers from a chat-completions API, through `huggingface_hub.InferenceClient`.

Hugging Face inference providers by default (``router.huggingface.co``, the HF token), or any OpenAI-compatible
endpoint with `ApiSettings.base_url` (vLLM, TGI, OpenRouter, OpenAI, ...; the key from the environment variable
`ApiSettings.api_key_env`). Each probe is one user turn (the server applies the model's chat template).

- Settings: ``max_new_tokens`` -> ``max_tokens``; greedy -> ``temperature 0``; sampling -> ``temperature``,
  ``top_p``, ``seed``. A parameter the server rejects (a 400/422 naming it) is dropped, retried without, and listed
  in the record's ``generation["rejected"]``; what was sent is ``generation["sent"]``.
- Requests run in a thread pool (`ApiSettings.concurrency`); 429 / 5xx / timeouts / dropped connections /
  malformed bodies are retried with exponential backoff (a 429's ``Retry-After`` is honoured, and pauses every
  worker). A wrong key (401/403), an unknown model (404), an unreachable endpoint or a request the server keeps
  refusing stop the run with one `ApiError` line.
- Every answer goes to the response cache as soon as it arrives (one file per probe), so an interrupted or
  rate-limited run resumes where it stopped and never asks for an answer it already has.
- Per-probe status (``generation["status"]``): ``stop``, ``length``, ``content_filter`` (text ""), ``empty``
  (the server answered nothing), ``refusal`` (the refusal text is the answer) or the server's own finish reason.
- The key is never written anywhere: not in records, cache files, logs or error messages (it is scrubbed from
  anything the server sends back), and ``base_url`` is recorded without credentials.
"""
from __future__ import annotations

import json
import os
import random
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ...errors import ApiError, InvalidInputError, first_line
from ...hub import ModelMetadata
from ..cache import ResponseCache, cache_key, default_cache_dir
from ..probes import ProbeSet
from ..responses import GenerationSettings, Responses

BACKEND = "api"
#: where chat completions go without a base_url: Hugging Face inference providers, routed server-side
HF_ROUTER = "https://router.huggingface.co/v1"
_HF_HOSTS = ("huggingface.co", "huggingface.cloud", "hf.space")
_SECRET_QUERY = re.compile(r"key|token|secret|sig|pass|auth|credential", re.IGNORECASE)
_FINISH = {"stop": "stop", "eos_token": "stop", "eos": "stop", "stop_sequence": "stop", "end_turn": "stop",
           "length": "length", "max_tokens": "length", "model_length": "length",
           "content_filter": "content_filter", "safety": "content_filter", "recitation": "content_filter"}
#: request fields a server may refuse, in the order they are given up
_OPTIONAL = ("seed", "top_p", "temperature", "max_tokens")


@dataclass
class ApiSettings:
    """Where and how fast to ask. Nothing here but `base_url` and the model is part of the cache key."""

    base_url: str | None = None  # None: HF inference providers; else an OpenAI-compatible ".../v1" endpoint
    api_key_env: str | None = None  # environment variable holding the key (default: HF token for HF hosts)
    concurrency: int = 4  # requests in flight
    timeout: float = 120.0  # seconds per request
    max_retries: int = 6  # retries per probe (429 / 5xx / timeout / dropped connection / malformed body)
    backoff: float = 1.0  # first retry delay, doubled each retry (with jitter)
    max_backoff: float = 60.0  # cap of one backoff delay, and of an honoured Retry-After
    connect_retries: int = 1  # retries of a refused connection before the endpoint ever answered

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise InvalidInputError(f"concurrency must be at least 1, not {self.concurrency}")
        if self.timeout <= 0 or self.max_retries < 0 or self.backoff < 0:
            raise InvalidInputError("timeout must be positive, max_retries and backoff not negative")
        if self.base_url is not None:
            parts = urlsplit(self.base_url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise InvalidInputError(f"--base-url must be an http(s) URL, not {public_url(self.base_url)!r}")
            if _url_secrets(self.base_url):  # HTTP clients log URLs: a key there would end in the logs
                raise InvalidInputError(f"--base-url must not carry credentials ({public_url(self.base_url)}): "
                                        "put the key in an environment variable and name it with --api-key-env")
        if self.api_key_env is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", self.api_key_env):
            raise InvalidInputError("--api-key-env takes the NAME of an environment variable, not a value")


@dataclass
class Answer:
    """One probe's answer as the API gave it."""

    text: str
    status: str
    sent: dict[str, Any] = field(default_factory=dict)
    served_model: str | None = None


def public_url(url: str) -> str:
    """`url` without credentials: no user:password, secret-looking query values replaced by ``***``."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        netloc = f"{host}:{parts.port}" if parts.port else host
    except ValueError:
        netloc = host
    query = urlencode([(k, "***" if _SECRET_QUERY.search(k) else v)
                       for k, v in parse_qsl(parts.query, keep_blank_values=True)], safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), query, ""))


def _url_secrets(url: str) -> list[str]:
    parts = urlsplit(url)
    found = [parts.username, parts.password]
    found += [v for k, v in parse_qsl(parts.query, keep_blank_values=True) if _SECRET_QUERY.search(k)]
    return [s for s in found if s]


def is_hf_endpoint(url: str | None) -> bool:
    """Hugging Face's own endpoints (the router, Inference Endpoints, Spaces): the HF token is theirs."""
    if url is None:
        return True
    host = (urlsplit(url).hostname or "").lower()
    return any(host == h or host.endswith("." + h) for h in _HF_HOSTS)


def resolve_api_key(api: ApiSettings, token: str | None = None) -> str | None:
    """The key to send: `$api_key_env` when named; the HF token (`token`, ``HF_TOKEN`` or the saved login) for
    Hugging Face endpoints; none for other endpoints (local vLLM / TGI servers need none)."""
    if api.api_key_env:
        value = os.environ.get(api.api_key_env, "").strip()
        if not value:
            raise ApiError(f"--api-key-env {api.api_key_env}: that environment variable is not set or empty")
        return value
    if is_hf_endpoint(api.base_url):
        from huggingface_hub import get_token

        value = token or get_token()
        if not value:
            raise ApiError("Hugging Face inference providers need a token: set HF_TOKEN or run `hf auth login` "
                           "(or give --base-url for another endpoint)")
        return value
    return None


def request_params(settings: GenerationSettings) -> dict[str, Any]:
    """The chat-completions fields a `GenerationSettings` asks for."""
    params: dict[str, Any] = {"max_tokens": settings.max_new_tokens}
    if settings.sampling:
        params.update(temperature=settings.temperature, top_p=settings.top_p, seed=settings.seed)
    else:
        params["temperature"] = 0.0
    return params


def answer_of(output: Any, sent: dict[str, Any]) -> Answer:
    """An `Answer` from a parsed chat completion (`ValueError` when it has no usable choice)."""
    choices = getattr(output, "choices", None)
    if not isinstance(choices, list) or not choices:
        raise ValueError("the response has no choices")
    choice = choices[0]
    message = getattr(choice, "message", None)
    if message is None:
        raise ValueError("the response's choice has no message")
    content = getattr(message, "content", None)
    if isinstance(content, list):  # content parts
        content = "".join(p.get("text", "") if isinstance(p, dict) else str(p) for p in content)
    if content is not None and not isinstance(content, str):
        raise ValueError(f"the message content is a {type(content).__name__}")
    text = content or ""
    finish = str(getattr(choice, "finish_reason", None) or "").lower()
    refusal = getattr(message, "refusal", None)
    if _FINISH.get(finish) == "content_filter":
        text, status = "", "content_filter"
    elif not text.strip() and isinstance(refusal, str) and refusal.strip():
        text, status = refusal, "refusal"
    elif not text.strip():
        status = "empty"
    else:
        status = _FINISH.get(finish, finish or "unknown")
    served = getattr(output, "model", None)
    return Answer(text, status, dict(sent), served if isinstance(served, str) else None)


def retry_after_seconds(headers: Any) -> float | None:
    """``Retry-After`` (seconds, or an HTTP date) in seconds; None when absent or unreadable."""
    value = None
    try:
        value = headers.get("retry-after") or headers.get("Retry-After")
    except AttributeError:
        return None
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError, OverflowError):
        return None


def _server_message(response: Any) -> str:
    """The error message a server sent (OpenAI ``{"error": {"message"}}``, TGI ``{"error": "..."}``, or text)."""
    try:
        text = response.text
    except (RuntimeError, OSError, ValueError, AttributeError):  # a streamed body not read, a decoding error
        try:
            text = response.read().decode("utf-8", "replace")
        except (RuntimeError, OSError, ValueError, AttributeError):
            return ""
    try:
        data = json.loads(text)
    except ValueError:
        return " ".join(text.split())[:300]
    if isinstance(data, dict):
        err = data.get("error", data.get("detail", data.get("message")))
        if isinstance(err, dict):
            err = err.get("message") or json.dumps(err)
        if err is not None:
            return " ".join(str(err).split())[:300]
    return " ".join(text.split())[:300]


class _Fatal(Exception):
    """Stops the whole run (the message is already scrubbed)."""


class _Stopped(Exception):
    """This worker was told to stop (another one failed, or the user interrupted)."""


class ApiCache(ResponseCache):
    """The response cache with one file per answered probe (``batch-<probe>.json``, the format `ResponseCache`
    reads), each also holding the answer's status, the fields sent and the served model name."""

    _lock = threading.Lock()  # one writer at a time: atomic writes touch the process umask

    def save_answer(self, index: int, answer: Answer) -> None:
        payload = {"indices": [int(index)], "texts": [answer.text], "status": [answer.status], "sent": answer.sent,
                   "served_model": answer.served_model}
        with self._lock:
            self.write_payload(int(index), payload)

    def load_answers(self) -> dict[int, Answer]:
        found: dict[int, Answer] = {}
        for data in self.payloads():
            try:
                statuses = data.get("status") or [None] * len(data["indices"])
                for i, text, status in zip(data["indices"], data["texts"], statuses):
                    found[int(i)] = Answer(str(text), status or ("empty" if not str(text).strip() else "stop"),
                                           dict(data.get("sent") or {}), data.get("served_model"))
            except (ValueError, KeyError, TypeError, AttributeError):
                continue
        return found
        for path in sorted(self.dir.glob("batch-*.json")):
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
                statuses = data.get("status") or [None] * len(data["indices"])
                for i, text, status in zip(data["indices"], data["texts"], statuses):
                    found[int(i)] = Answer(str(text), status or ("empty" if not str(text).strip() else "stop"),
                                           dict(data.get("sent") or {}), data.get("served_model"))
            except (OSError, ValueError, KeyError, TypeError, AttributeError):
                continue
        return found


class ApiJob:
    """One model x one probe set through a chat-completions API: cache, thread pool, retries."""

    def __init__(self, model: str, probe_set: ProbeSet, settings: GenerationSettings | None = None,
                 api: ApiSettings | None = None, *, token: str | None = None,
                 cache_dir: str | os.PathLike | None = None, use_cache: bool = True,
                 metadata: ModelMetadata | None = None):
        if not model or not model.strip():
            raise InvalidInputError("--backend api needs a model name")
        self.model = model
        self.probe_set = probe_set
        self.settings = settings or GenerationSettings()
        self.api = api or ApiSettings()
        self.metadata = metadata
        self.url = public_url(self.api.base_url) if self.api.base_url else HF_ROUTER
        self._key = resolve_api_key(self.api, token)
        self._secrets = sorted({s for s in [self._key, *_url_secrets(self.api.base_url or "")] if s},
                               key=len, reverse=True)
        self.requested = request_params(self.settings)
        self._params = dict(self.requested)
        self._extra: dict[str, Any] = {}
        self._rejected: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._pause_until = 0.0
        self._answered_once = False
        self.retries = 0
        self.requests = 0
        material = {"backend": BACKEND, "base_url": self.url, "params": self.requested, "messages": "user-turn"}
        key = cache_key(model, BACKEND, probe_set.hash, material)
        root = (cache_dir if cache_dir is not None else default_cache_dir()) if use_cache else None
        self.cache = ApiCache(root, key, {"model": model, "revision": BACKEND, "probe_set": probe_set.name,
                                          "probe_hash": probe_set.hash, "generation": material})
        self._client: Any = None

    # -- the client ---------------------------------------------------------------------------------------------
    @property
    def client(self) -> Any:
        if self._client is None:
            from huggingface_hub import InferenceClient

            if self.api.base_url is None:
                self._client = InferenceClient(api_key=self._key, timeout=self.api.timeout)
            elif self._key is None:  # no Authorization header at all (never the HF token to a foreign host)
                self._client = InferenceClient(base_url=self.api.base_url, api_key="", timeout=self.api.timeout,
                                               headers={"authorization": None})
            else:
                self._client = InferenceClient(base_url=self.api.base_url, api_key=self._key, timeout=self.api.timeout)
        return self._client

    def scrub(self, text: str) -> str:
        """`text` without the key or the URL's credentials."""
        for secret in self._secrets:
            text = text.replace(secret, "***")
        if self.api.base_url:
            text = text.replace(self.api.base_url, self.url)
        return text

    def _fail(self, what: str) -> _Fatal:
        return _Fatal(self.scrub(f"{self.model} at {self.url}: {what}"))

    # -- one probe ----------------------------------------------------------------------------------------------
    def ask(self, index: int, prompt: str) -> Answer:
        """The answer to one probe, retried through transient failures; saved to the cache when it arrives."""
        import httpx2
        from huggingface_hub.errors import HfHubHTTPError, InferenceTimeoutError

        messages = [{"role": "user", "content": prompt}]
        last = ""
        attempt = 0
        adjustments = 0
        while True:
            self._wait_pause()
            with self._lock:
                params, extra = dict(self._params), dict(self._extra)
                self.requests += 1
            delay: float | None = None
            try:
                output = self.client.chat_completion(messages, model=self.model, **params,
                                                     extra_body=extra or None)
                answer = answer_of(output, {**params, **extra})
                with self._lock:
                    self._answered_once = True
                self.cache.save_answer(index, answer)
                return answer
            except HfHubHTTPError as err:
                response = getattr(err, "response", None)
                status = getattr(response, "status_code", None) or 0
                message = _server_message(response) if response is not None else ""
                last = f"HTTP {status}" + (f": {message}" if message else "")
                if status == 429:
                    delay = retry_after_seconds(response.headers)
                    if delay is not None:
                        self._pause(min(delay, self.api.max_backoff))
                elif status in (408, 409) or status >= 500:
                    delay = retry_after_seconds(response.headers) if response is not None else None
                elif status in (400, 422) and adjustments < len(_OPTIONAL) and self._adjust(params, extra, message):
                    adjustments += 1
                    continue  # the same probe again, without what the server refused (not a retry)
                elif status in (401, 403):
                    raise self._fail(f"the key was refused ({last})") from None
                elif status == 404:
                    raise self._fail(f"no such model or endpoint ({last})") from None
                else:
                    raise self._fail(f"the request was refused ({last})") from None
            except InferenceTimeoutError:
                last = f"no answer within {self.api.timeout:g} s"
            except httpx2.ConnectError as err:
                last = f"cannot connect ({first_line(err)})"
                with self._lock:
                    answered = self._answered_once
                if not answered and attempt >= self.api.connect_retries:
                    raise self._fail(f"unreachable: {last}") from None
            except httpx2.TransportError as err:  # dropped connection, read error, protocol error
                last = f"connection failed ({first_line(err)})"
            except ValueError as err:  # an unparsable body (JSON errors are ValueErrors), or no usable choice
                last = f"malformed response ({first_line(err)})"
            attempt += 1
            if attempt > self.api.max_retries:
                raise self._fail(f"probe {index}: no answer after {attempt} attempts (last: {last})") from None
            with self._lock:
                self.retries += 1
            if delay is None:
                delay = min(self.api.max_backoff, self.api.backoff * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)
            if self._stop.wait(min(delay, self.api.max_backoff)):
                raise _Stopped()

    def _adjust(self, sent: dict[str, Any], extra: dict[str, Any], message: str) -> bool:
        """Give up the field a 400/422 names (``max_tokens`` -> ``max_completion_tokens`` when asked); False when
        the message names nothing that was sent."""
        lower = message.lower()
        named = [p for p in _OPTIONAL if (p in sent or p in extra) and re.search(rf"\b{p}\b", lower)]
        if not named:
            return False
        name = named[0]
        with self._lock:
            if name in self._params:  # another worker may have dropped it already
                value = self._params.pop(name)
                self._rejected.append(name)
                if name == "max_tokens" and "max_completion_tokens" in lower:
                    self._extra["max_completion_tokens"] = value
        return True

    def _pause(self, seconds: float) -> None:
        with self._lock:
            self._pause_until = max(self._pause_until, time.monotonic() + seconds)

    def _wait_pause(self) -> None:
        while True:
            if self._stop.is_set():
                raise _Stopped()
            with self._lock:
                left = self._pause_until - time.monotonic()
            if left <= 0:
                return
            if self._stop.wait(left):
                raise _Stopped()

    # -- the whole probe set ------------------------------------------------------------------------------------
    def run(self, progress: bool = True) -> dict[int, Answer]:
        """Every probe's answer: the cached ones read back, the others asked ``concurrency`` at a time."""
        from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait

        from tqdm.auto import tqdm

        done = self.cache.load_answers()
        n = len(self.probe_set)
        result = {i: a for i, a in done.items() if 0 <= i < n}
        todo = [i for i in range(n) if i not in result]
        if not todo:
            return result
        self.client  # noqa: B018  (build it before the threads start)
        self._stop.clear()
        pool = ThreadPoolExecutor(max_workers=min(self.api.concurrency, len(todo)), thread_name_prefix="hf-dna-api")
        futures = {pool.submit(self.ask, i, self.probe_set.prompts[i]): i for i in todo}
        pending = set(futures)
        try:
            with tqdm(total=n, initial=len(result), disable=not progress, unit="probe",
                      desc=f"ask {self.model}") as bar:
                while pending:
                    finished, pending = wait(pending, timeout=0.5, return_when=FIRST_EXCEPTION)
                    for future in finished:
                        error = future.exception()
                        if isinstance(error, _Fatal):
                            raise ApiError(str(error)) from None
                        if error is not None and not isinstance(error, _Stopped):
                            raise ApiError(self.scrub(f"{self.model} at {self.url}: {first_line(error)}")) from None
                        if error is None:
                            result[futures[future]] = future.result()
                            bar.update(1)
                    if self.retries:
                        bar.set_postfix(retries=self.retries, refresh=False)
        except KeyboardInterrupt:  # answers in flight still reach the cache; nothing new is asked
            self._stop.set()
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        finally:
            self._stop.set()
            pool.shutdown(wait=True, cancel_futures=True)
        return result

    # -- the result ---------------------------------------------------------------------------------------------
    def generation_info(self, answers: list[Answer]) -> dict[str, Any]:
        """What the record says about how its responses were made (no key, no credentials)."""
        s = self.settings
        info: dict[str, Any] = {"backend": BACKEND, "base_url": self.url, "model": self.model,
                                "max_new_tokens": s.max_new_tokens, "sampling": s.sampling,
                                "chat_template": "server", "chat_template_used": True}
        if self.api.base_url is None:
            info["provider"] = "hf-inference-providers"
        if s.sampling:
            info.update(temperature=s.temperature, top_p=s.top_p, seed=s.seed)
        sent_sets = Counter(json.dumps(a.sent, sort_keys=True) for a in answers)
        sent = json.loads(sent_sets.most_common(1)[0][0]) if sent_sets else dict(self.requested)
        info["requested"] = dict(self.requested)
        info["sent"] = sent
        if len(sent_sets) > 1:
            info["sent_varied"] = True
        rejected = sorted({k for a in answers for k in self.requested if k not in a.sent} | set(self._rejected))
        info["rejected"] = rejected
        served = Counter(a.served_model for a in answers if a.served_model)
        if served:
            info["served_model"] = served.most_common(1)[0][0]
        info["status"] = [a.status for a in answers]
        info["status_counts"] = dict(sorted(Counter(info["status"]).items()))
        return info

    def responses(self, answers: dict[int, Answer]) -> Responses:
        ordered = [answers[i] for i in range(len(self.probe_set))]
        static = self.metadata.static_evidence if self.metadata is not None else {}
        return Responses(self.model, BACKEND, [a.text for a in ordered], self.generation_info(ordered), static)


def api_responses(model: str, probe_set: ProbeSet, settings: GenerationSettings | None = None,
                  api: ApiSettings | None = None, *, token: str | None = None,
                  cache_dir: str | os.PathLike | None = None, use_cache: bool = True, progress: bool = True,
                  metadata: ModelMetadata | None = None) -> Responses:
    """One answer per probe of `probe_set` from `model` behind a chat-completions API (cached, resumable)."""
    job = ApiJob(model, probe_set, settings, api, token=token, cache_dir=cache_dir, use_cache=use_cache,
                 metadata=metadata)
    return job.responses(job.run(progress))


__all__ = ["HF_ROUTER", "Answer", "ApiJob", "ApiSettings", "api_responses", "public_url", "request_params"]
