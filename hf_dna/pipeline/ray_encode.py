"""Ray for hf-dna: connect to a cluster (bounded, one-line errors) and spread sentence embedding over tasks.

`hf-dna reference build --ray ADDRESS` embeds each model's responses in a Ray task (`encode_on_ray`); `hf-dna
scan --ray ADDRESS` (`hf_dna.scan`) connects through `connect`. Ray is an optional extra
(``pip install "hf-dna[ray]"``): nothing imports it before one of these functions is called.

ADDRESS: ``HOST:PORT`` (the head's GCS port, 6379 by default) or ``ray://HOST:PORT`` (Ray Client), ``auto``
($RAY_ADDRESS, else the cluster ``ray start`` left on this machine), or ``local`` (a Ray started here, for this
run only). An address that does not answer fails fast, in one line, before anything is computed.

Embeddings made on the workers are the serial ones bit for bit when the workers run the same encoder on the
same kind of CPU with the same torch thread count (each task sets ``HF_DNA_NUM_THREADS`` to the CPUs Ray gave
it; one thread on the <=2-vCPU machines where the serial run uses one as well).
"""
from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from ..errors import HfDnaError

#: seconds a Ray address has to answer (TCP) and then to accept the driver (ray.init)
CONNECT_TIMEOUT_S = float(os.environ.get("HF_DNA_RAY_CONNECT_TIMEOUT", "5"))
INIT_TIMEOUT_S = float(os.environ.get("HF_DNA_RAY_INIT_TIMEOUT", "60"))
_DEFAULT_PORTS = {"": 6379, "ray://": 10001}


class RayClusterError(HfDnaError):
    """Ray is not installed, or the Ray cluster at an address does not answer."""


def import_ray() -> Any:
    """The `ray` module, or a one-line error naming the extra to install."""
    try:
        import ray
    except ImportError:
        raise RayClusterError('--ray needs Ray: install hf-dna[ray] (pip install "hf-dna[ray]")') from None
    return ray


def _host_port(address: str) -> tuple[str, int] | None:
    """(host, port) to probe for an explicit address; None for ``auto`` without $RAY_ADDRESS."""
    scheme = "ray://" if address.startswith("ray://") else ""
    rest = address[len(scheme):].split("/", 1)[0]
    if not rest:
        return None
    host, _, port = rest.rpartition(":") if ":" in rest else (rest, "", "")
    if not port.isdigit():
        raise RayClusterError(f"Ray address {address!r} is not HOST:PORT, ray://HOST:PORT, auto or local")
    return host.strip("[]") or "127.0.0.1", int(port) if port else _DEFAULT_PORTS[scheme]


def _answers(host: str, port: int, timeout_s: float) -> str | None:
    """None when something accepts a TCP connection at host:port within `timeout_s`, else why not."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return None
    except TimeoutError:
        return f"no answer within {timeout_s:g} s"
    except OSError as err:
        return err.strerror or type(err).__name__


def connect(address: str, *, timeout_s: float = CONNECT_TIMEOUT_S, init_timeout_s: float = INIT_TIMEOUT_S,
            **init_options: Any) -> Any:
    """Connect this process to the Ray cluster at `address` (see the module doc) and return the `ray` module.

    A process already connected (``ray.init`` called before, as tests and notebooks do) is reused as it is.
    Raises `RayClusterError` when Ray is missing, the address does not answer within `timeout_s`, or
    ``ray.init`` does not complete within `init_timeout_s` (something answers there, but not a Ray head).
    """
    ray = import_ray()
    if ray.is_initialized():
        return ray
    address = (address or "auto").strip()
    options: dict[str, Any] = {"logging_level": "ERROR", "log_to_driver": False, **init_options}
    if address == "local":
        options.setdefault("include_dashboard", False)
        ray.init(**options)
        return ray
    target = os.environ.get("RAY_ADDRESS", "auto") if address == "auto" else address
    probe = _host_port(target) if target != "auto" else None
    if probe is not None:
        why = _answers(*probe, timeout_s)
        if why is not None:
            raise RayClusterError(f"no Ray cluster answers at {target} ({why}): start one with `ray start --head` "
                                  "or check the address")
    what = f"Ray at {target}" if target != "auto" else "Ray (auto: $RAY_ADDRESS or this machine's cluster)"
    _bounded(lambda: ray.init(address=target, **options), init_timeout_s, what)
    return ray


def _bounded(call: Callable[[], Any], timeout_s: float, what: str) -> None:
    """Run `call` in a daemon thread; one-line `RayClusterError` when it fails or outlives `timeout_s`."""
    box: dict[str, BaseException] = {}

    def run() -> None:
        try:
            call()
        except BaseException as err:  # noqa: BLE001 - reported below, in one line
            box["error"] = err

    worker = threading.Thread(target=run, name="hf-dna-ray-init", daemon=True)
    worker.start()
    worker.join(timeout_s)
    if worker.is_alive():
        raise RayClusterError(f"{what} did not accept this driver within {timeout_s:g} s (is it a Ray head?)")
    if "error" in box:
        raise RayClusterError(f"{what} refused this driver: {first_line(box['error'])}")


def first_line(err: BaseException) -> str:
    """One line for an exception; for a Ray task error, the line of the error the task raised."""
    cause = getattr(err, "cause", None)
    if isinstance(cause, BaseException) and cause is not err:
        err = cause
    text = next((line.strip() for line in str(err).splitlines() if line.strip()), "")
    return f"{type(err).__name__}: {text}" if text and not isinstance(err, HfDnaError) else (text or type(err).__name__)


def assigned_cpus(ray: Any) -> int:
    """CPUs Ray gave the running task (at least 1)."""
    try:
        return max(1, int(ray.get_runtime_context().get_assigned_resources().get("CPU", 1)))
    except Exception:  # noqa: BLE001 - not in a task, or an older Ray
        return 1


def pin_threads(ray: Any) -> None:
    """Inside a task: torch uses the CPUs Ray assigned, unless the user set ``HF_DNA_NUM_THREADS``."""
    os.environ.setdefault("HF_DNA_NUM_THREADS", str(assigned_cpus(ray)))


def _encode_task(name: str, revision: str | None, texts: list[str]) -> np.ndarray:
    """Ray task: the per-response embeddings of one model's texts (the encoder is loaded once per worker)."""
    import ray

    from .device import torch_threads
    from .embed import load_encoder

    pin_threads(ray)
    encoder = load_encoder(name, revision)
    with torch_threads():
        return encoder.encode(list(texts))


def encode_on_ray(texts_by_model: dict[str, list[str]], encoder: Any, address: str, *, progress: bool = False,
                  max_retries: int = 3) -> dict[str, np.ndarray]:
    """model_id -> embeddings of its texts, each model embedded in a Ray task on the cluster at `address`.

    `encoder` is an `hf_dna.pipeline.embed.Encoder` (or its name): workers load it by name and revision, so a
    local encoder directory must exist on every worker. A task whose worker dies is retried (`max_retries`).
    """
    from tqdm.auto import tqdm

    ray = connect(address)
    name = getattr(encoder, "name", encoder)
    revision = getattr(encoder, "revision", None)
    if revision == "local":
        revision = None
    remote = ray.remote(_encode_task).options(num_cpus=1, max_retries=max_retries)
    pending = {remote.remote(name, revision, texts): model_id for model_id, texts in texts_by_model.items()}
    out: dict[str, np.ndarray] = {}
    started = time.monotonic()
    with tqdm(total=len(pending), desc="embedding on Ray", unit="model", disable=not progress) as bar:
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                model_id = pending.pop(ref)
                try:
                    out[model_id] = np.asarray(ray.get(ref), dtype=np.float32)
                except Exception as err:  # noqa: BLE001 - a task error or a worker lost after its retries
                    for other in pending:
                        ray.cancel(other)
                    raise RayClusterError(f"embedding {model_id} on Ray failed: {first_line(err)}") from None
                bar.update(1)
    if progress:
        bar.write(f"embedded {len(out)} models on Ray in {time.monotonic() - started:.1f} s")
    return out
