"""The one place hf-dna talks to the Hugging Face Hub (a leaf: imports nothing else from hf_dna but errors).

Every Hub call goes through here so that endpoint, token, offline mode and error translation are handled once:
generic helpers (create_repo, commit_files with parent_commit, open_pr_with_file, list/download files, list_models,
list_discussions) and `model_metadata` / `local_metadata`, the declared lineage and static evidence of a model.
Every failure is a one-line `HubError` subclass; with HF_HUB_OFFLINE=1 calls raise `HubOfflineError`.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .errors import GatedRepoError, HubError, HubOfflineError, HubUnreachableError, RepoNotFoundError, StaleParentError


def is_offline() -> bool:
    """True when the user asked huggingface_hub not to touch the network."""
    from huggingface_hub import constants

    env = os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}
    return bool(constants.HF_HUB_OFFLINE) or env


#: transport exceptions (httpx / httpx2 / requests class names) that mean "could not reach the server"
_NETWORK_ERRORS = {"ConnectError", "ConnectTimeout", "NetworkError", "ConnectionError"}


def _is_network_error(err: Exception) -> bool:
    return isinstance(err, ConnectionError) or any(k.__name__ in _NETWORK_ERRORS for k in type(err).__mro__)


def translate_error(err: Exception, repo_id: str, repo_type: str = "model") -> Exception:
    """Map a huggingface_hub / network exception to a one-line hf-dna error."""
    from huggingface_hub import errors as hf_errors

    if isinstance(err, hf_errors.OfflineModeIsEnabled):
        return HubOfflineError(f"Hub access to {repo_id} is disabled (HF_HUB_OFFLINE=1)")
    if isinstance(err, hf_errors.GatedRepoError):
        return GatedRepoError(f"{repo_type} repo {repo_id} is gated or private: pass a token with access (--token or HF_TOKEN)")
    if isinstance(err, (hf_errors.RepositoryNotFoundError,)):
        return RepoNotFoundError(f"{repo_type} repo {repo_id} not found on {endpoint()} (or private: pass a token)")
    if isinstance(err, hf_errors.RevisionNotFoundError):
        return RepoNotFoundError(f"revision not found in {repo_type} repo {repo_id}")
    if isinstance(err, hf_errors.LocalEntryNotFoundError):
        return HubError(f"{repo_type} repo {repo_id} is not cached and the Hub is unreachable (offline)")
    if isinstance(err, hf_errors.EntryNotFoundError):
        return RepoNotFoundError(f"file not found in {repo_type} repo {repo_id}: {_first_line(err)}")
    if isinstance(err, hf_errors.HfHubHTTPError) and getattr(err.response, "status_code", None) == 412:
        return StaleParentError(f"{repo_type} repo {repo_id} changed during the push (someone else committed)")
    if isinstance(err, hf_errors.HfHubHTTPError):
        return HubError(f"Hub request for {repo_id} failed: {_first_line(err)}")
    if _is_network_error(err):
        return HubUnreachableError(f"the Hub at {endpoint()} is unreachable ({type(err).__name__}: {err})")
    return HubError(f"Hub request for {repo_id} failed: {type(err).__name__}: {err}")


def hf_dna_home() -> Path:
    """hf-dna's own folder under the Hugging Face home (``$HF_HOME/hf-dna``): caches and assembled models."""
    from huggingface_hub import constants

    return Path(constants.HF_HOME) / "hf-dna"


def endpoint() -> str:
    from huggingface_hub import constants

    return constants.ENDPOINT


def try_snapshot_download(repo_id: str, revision: str | None = None, allow_patterns: list[str] | None = None) -> str | None:
    """Snapshot-download a repo, or return None when offline, unreachable or missing (the caller falls back)."""
    if is_offline() or os.path.isdir(repo_id):
        return None
    from huggingface_hub import HfApi, snapshot_download

    try:
        # one quick call first: snapshot_download retries an unreachable Hub for ~25 s before giving up
        sha = HfApi().model_info(repo_id, revision=revision, timeout=10).sha or revision
        return snapshot_download(repo_id, revision=sha, allow_patterns=allow_patterns)
    except Exception:  # any failure here means "not available from the Hub": the caller has a fallback
        return None


def snapshot(repo_id: str, revision: str | None = None, token: str | bool | None = None,
             allow_patterns: list[str] | None = None) -> tuple[str, str]:
    """Download (or reuse from cache) the files of a model repo; returns (local_dir, commit_sha).

    Raises `RepoNotFoundError`, `GatedRepoError` or `HubError` with a one-line message.
    """
    from huggingface_hub import HfApi, snapshot_download

    try:
        if is_offline():
            path = snapshot_download(repo_id, revision=revision, token=token, allow_patterns=allow_patterns)
            return path, os.path.basename(path)
        sha = HfApi(token=token).model_info(repo_id, revision=revision).sha or (revision or "main")
        path = snapshot_download(repo_id, revision=sha, token=token, allow_patterns=allow_patterns)
        return path, sha
    except Exception as err:
        raise translate_error(err, repo_id) from None


def _first_line(err: Exception) -> str:
    return next((line.strip() for line in str(err).splitlines() if line.strip()), type(err).__name__)


# ---- generic helpers: every Hub read/write of the product goes through these ---------------------------------------
@contextlib.contextmanager
def _hub_call(repo_id: str, repo_type: str = "model") -> Iterator[None]:
    """Refuse when offline; turn any huggingface_hub / network failure into a one-line `HubError` subclass."""
    if is_offline():
        raise HubOfflineError(f"Hub access to {repo_id} is disabled (HF_HUB_OFFLINE=1)")
    try:
        yield
    except HubError:
        raise
    except Exception as err:  # every client/network failure becomes a typed, one-line error
        raise translate_error(err, repo_id, repo_type) from None


def _api(token: str | bool | None = None):
    from huggingface_hub import HfApi

    return HfApi(token=token)


@dataclass
class CommitResult:
    """What a commit produced: the new head sha, its URL and, for a pull request, the PR URL and number."""

    sha: str
    url: str
    pr_url: str | None = None
    pr_num: int | None = None


def create_repo(repo_id: str, repo_type: str = "model", token: str | bool | None = None, private: bool = False,
                exist_ok: bool = True) -> str:
    """Create a repo (no-op when it exists and `exist_ok`); returns its URL."""
    with _hub_call(repo_id, repo_type):
        return str(_api(token).create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=exist_ok))


def head_sha(repo_id: str, repo_type: str = "model", revision: str | None = None,
             token: str | bool | None = None) -> str:
    """The commit sha a revision (default: main) points to."""
    with _hub_call(repo_id, repo_type):
        return _api(token).repo_info(repo_id, repo_type=repo_type, revision=revision).sha


def commit_files(repo_id: str, files: dict[str, bytes | str | os.PathLike], message: str, *,
                 repo_type: str = "model", token: str | bool | None = None, parent_commit: str | None = None,
                 delete: Iterable[str] = (), create_pr: bool = False, description: str | None = None,
                 revision: str | None = None) -> CommitResult:
    """Commit `files` (path in repo -> bytes, text or local path) and deletions in one commit.

    With `parent_commit`, the commit is refused with `StaleParentError` when the branch moved meanwhile.
    Unchanged files are skipped by the client; a commit with nothing new returns the current head.
    """
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete

    operations: list = [CommitOperationAdd(path, content.encode() if isinstance(content, str) else content)
                        for path, content in files.items()]
    operations += [CommitOperationDelete(path) for path in delete]
    with _hub_call(repo_id, repo_type):
        info = _api(token).create_commit(repo_id, operations, commit_message=message, repo_type=repo_type,
                                         parent_commit=parent_commit, create_pr=create_pr, revision=revision,
                                         commit_description=description)
    return CommitResult(sha=info.oid, url=info.commit_url, pr_url=info.pr_url, pr_num=info.pr_num)


def open_pr_with_file(repo_id: str, path: str, content: bytes | str, title: str, description: str = "", *,
                      repo_type: str = "model", token: str | bool | None = None) -> str:
    """Open a pull request that adds/replaces one file; returns the PR URL."""
    result = commit_files(repo_id, {path: content}, title, repo_type=repo_type, token=token, create_pr=True,
                          description=description)
    if result.pr_url is None:
        raise HubError(f"the Hub did not open a pull request on {repo_id}")
    return result.pr_url


def list_repo_files(repo_id: str, repo_type: str = "model", revision: str | None = None,
                    token: str | bool | None = None) -> list[str]:
    """All file paths of a repo at a revision."""
    with _hub_call(repo_id, repo_type):
        return list(_api(token).list_repo_files(repo_id, repo_type=repo_type, revision=revision))


def list_repo_entries(repo_id: str, repo_type: str = "model", revision: str | None = None,
                      token: str | bool | None = None) -> dict[str, dict[str, Any]]:
    """Every file of a repo with its size, git blob id and (LFS files) sha256, from one recursive tree listing."""
    from huggingface_hub.hf_api import RepoFile

    with _hub_call(repo_id, repo_type):
        tree = _api(token).list_repo_tree(repo_id, repo_type=repo_type, revision=revision, recursive=True)
        return {e.path: {"size": e.size, "blob_id": e.blob_id, "sha256": e.lfs.sha256 if e.lfs else None}
                for e in tree if isinstance(e, RepoFile)}


def content_matches(entry: dict[str, Any], data: bytes) -> bool:
    """True when `data` is exactly the content of a tree entry (sha256 for LFS files, git blob id otherwise)."""
    import hashlib

    from huggingface_hub.utils import sha

    if entry.get("sha256"):
        return hashlib.sha256(data).hexdigest() == entry["sha256"]
    return sha.git_hash(data) == entry.get("blob_id")


def download_file(repo_id: str, filename: str, repo_type: str = "model", revision: str | None = None,
                  token: str | bool | None = None) -> str:
    """Download (or reuse from cache) one file; returns its local path."""
    from huggingface_hub import hf_hub_download

    with _hub_call(repo_id, repo_type):
        return hf_hub_download(repo_id, filename, repo_type=repo_type, revision=revision, token=token)


def read_text(repo_id: str, filename: str, repo_type: str = "model", revision: str | None = None,
              token: str | bool | None = None) -> str | None:
    """A text file's content, or None when the repo has no such file."""
    try:
        return Path(download_file(repo_id, filename, repo_type, revision, token)).read_text(encoding="utf-8")
    except RepoNotFoundError:
        if not repo_exists(repo_id, repo_type, token):
            raise
        return None


def repo_exists(repo_id: str, repo_type: str = "model", token: str | bool | None = None) -> bool:
    """True when the repo exists and is visible with this token."""
    with _hub_call(repo_id, repo_type):
        return _api(token).repo_exists(repo_id, repo_type=repo_type)


def snapshot_repo(repo_id: str, local_dir: str | os.PathLike | None = None, repo_type: str = "model",
                  revision: str | None = None, token: str | bool | None = None,
                  allow_patterns: list[str] | None = None) -> tuple[str, str]:
    """Download a repo at a pinned commit (into `local_dir` when given); returns (path, commit_sha)."""
    from huggingface_hub import snapshot_download

    with _hub_call(repo_id, repo_type):
        sha = _api(token).repo_info(repo_id, repo_type=repo_type, revision=revision).sha
        path = snapshot_download(repo_id, repo_type=repo_type, revision=sha, token=token,
                                 local_dir=str(local_dir) if local_dir is not None else None,
                                 allow_patterns=allow_patterns)
    return path, sha


def list_models(author: str, token: str | bool | None = None) -> list[str]:
    """Ids of the models an author (user or org) has on the Hub."""
    with _hub_call(author):
        return [m.id for m in _api(token).list_models(author=author)]


def list_discussions(repo_id: str, repo_type: str = "model", token: str | bool | None = None) -> list[dict[str, Any]]:
    """Discussions and pull requests of a repo, newest first: num, title, status, is_pull_request, author, url."""
    with _hub_call(repo_id, repo_type):
        return [{"num": d.num, "title": d.title, "status": d.status, "is_pull_request": d.is_pull_request,
                 "author": d.author, "url": d.url}
                for d in _api(token).get_repo_discussions(repo_id, repo_type=repo_type)]


# ---- declared lineage and static evidence of a model ---------------------------------------------------------------
RELATIONS = ("finetune", "adapter", "merge", "quantized")
_SMALL_FILES = ("README.md", "config.json", "adapter_config.json")
#: tokenizer.json files bigger than this are not downloaded just for the vocab hash
TOKENIZER_MAX_BYTES = 40_000_000


@dataclass
class ModelMetadata:
    """What a model's card, tags and files *declare* about it, plus cheap static evidence.

    `base_model_sources` maps each declared base to where it was found: card, tags, adapter_config, gguf.
    A malformed card YAML does not raise: it lands in `warnings` and the other sources are still used.
    """

    model_id: str
    revision: str | None = None
    base_models: list[str] = field(default_factory=list)
    base_model_relation: str | None = None
    relation_declared: bool = False
    base_model_sources: dict[str, list[str]] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    license: str | None = None
    pipeline_tag: str | None = None
    architectures: list[str] = field(default_factory=list)
    model_type: str | None = None
    vocab_size: int | None = None
    tokenizer_vocab_hash: str | None = None
    gated: bool | str = False
    private: bool = False
    files: list[str] = field(default_factory=list)
    source: str = "hub"
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def static_evidence(self) -> dict[str, Any]:
        """What the files say about lineage beside behaviour (stored in a DNA record's ``evidence["static"]``):
        architectures, model_type, vocab_size, tokenizer_vocab_hash; only the fields that are known."""
        fields = {"architectures": self.architectures, "model_type": self.model_type,
                  "vocab_size": self.vocab_size, "tokenizer_vocab_hash": self.tokenizer_vocab_hash}
        return {k: v for k, v in fields.items() if v}


def parse_card_metadata(readme: str) -> tuple[dict[str, Any], str | None]:
    """The README's YAML front matter as a dict, and a warning when it is malformed (then the dict is empty)."""
    import yaml
    from huggingface_hub.repocard import REGEX_YAML_BLOCK

    match = REGEX_YAML_BLOCK.search(readme)
    if not match:
        return {}, None
    try:
        data = yaml.safe_load(match.group(2))
    except yaml.YAMLError as err:
        where = getattr(err, "problem_mark", None)
        line = f" (line {where.line + 2})" if where is not None else ""
        return {}, f"model card metadata is not valid YAML{line}: {getattr(err, 'problem', None) or _first_line(err)}"
    if data is None:
        return {}, None
    if not isinstance(data, dict):
        return {}, "model card metadata is not a YAML mapping"
    return data, None


def parse_base_model_tags(tags: Iterable[str]) -> tuple[list[str], str | None]:
    """Bases and relation from `base_model:org/x` and `base_model:<relation>:org/x` tags."""
    bases: list[str] = []
    relation = None
    for tag in tags:
        if not tag.startswith("base_model:"):
            continue
        value = tag[len("base_model:"):]
        head, _, rest = value.partition(":")
        if rest and head in RELATIONS:
            relation, value = relation or head, rest
        if value and value not in bases:
            bases.append(value)
    return bases, relation


def tokenizer_vocab_hash(tokens: Iterable[str]) -> str:
    """sha256 over the sorted vocabulary (newline-joined): equal for models sharing a tokenizer vocab."""
    import hashlib

    return hashlib.sha256("\n".join(sorted(set(tokens))).encode("utf-8")).hexdigest()


def _vocab_from_tokenizer_json(data: dict) -> list[str]:
    vocab = (data.get("model") or {}).get("vocab")
    if isinstance(vocab, dict):
        return list(vocab)
    if isinstance(vocab, list):  # Unigram: [[piece, score], ...]
        return [item[0] if isinstance(item, list) else str(item) for item in vocab]
    return []


def read_gguf_header(read_prefix: Callable[[int], bytes], start: int = 1 << 20, limit: int = 256 << 20) -> dict[str, Any]:
    """GGUF key/value metadata, parsed from the first bytes of the file only (never the tensors).

    `read_prefix(n)` returns the file's first n bytes (fewer at end of file); the prefix grows until the header fits.
    """
    from .errors import CorruptModelFileError

    size = start
    while True:
        data = read_prefix(size)
        try:
            return _parse_gguf_kv(data)
        except _Truncated:
            if len(data) < size or size >= limit:
                raise CorruptModelFileError("GGUF header is truncated or too large") from None
            size *= 4


class _Truncated(Exception):
    pass


def _parse_gguf_kv(data: bytes) -> dict[str, Any]:
    import struct

    from gguf import GGUFValueType as T

    from .errors import CorruptModelFileError

    scalar = {T.UINT8: "<B", T.INT8: "<b", T.UINT16: "<H", T.INT16: "<h", T.UINT32: "<I", T.INT32: "<i",
              T.FLOAT32: "<f", T.BOOL: "<?", T.UINT64: "<Q", T.INT64: "<q", T.FLOAT64: "<d"}
    pos = 0

    def take(fmt: str):
        nonlocal pos
        width = struct.calcsize(fmt)
        if pos + width > len(data):
            raise _Truncated
        (value,) = struct.unpack_from(fmt, data, pos)
        pos += width
        return value

    def string() -> str:
        nonlocal pos
        length = take("<Q")
        if pos + length > len(data):
            raise _Truncated
        pos += length
        return data[pos - length:pos].decode("utf-8", "replace")

    def value(kind: int):
        kind = T(kind)
        if kind == T.STRING:
            return string()
        if kind == T.ARRAY:
            item_kind, count = take("<I"), take("<Q")
            return [value(item_kind) for _ in range(count)]
        return take(scalar[kind])

    if data[:4] != b"GGUF":
        raise CorruptModelFileError("not a GGUF file (bad magic)")
    pos = 4
    version = take("<I")
    if version < 2:
        raise CorruptModelFileError(f"GGUF version {version} is not supported")
    take("<Q")  # tensor count
    kv_count = take("<Q")
    header: dict[str, Any] = {}
    try:
        for _ in range(kv_count):
            key = string()
            header[key] = value(take("<I"))
    except ValueError as err:  # unknown value type
        raise CorruptModelFileError(f"GGUF header is malformed: {err}") from None
    return header


def gguf_base_models(header: dict[str, Any]) -> list[str]:
    """Declared bases from `general.base_model.N.{repo_url,organization,name}` GGUF keys, as Hub repo ids."""
    bases = []
    for index in range(int(header.get("general.base_model.count", 0) or 0)):
        prefix = f"general.base_model.{index}."
        url = str(header.get(prefix + "repo_url") or "")
        match = re.search(r"huggingface\.co/(?:models/)?([^/\s]+/[^/\s?#]+)", url)
        if match:
            bases.append(match.group(1))
        elif header.get(prefix + "organization") and header.get(prefix + "name"):
            org = str(header[prefix + "organization"]).replace(" ", "-")
            bases.append(f"{org}/{str(header[prefix + 'name']).replace(' ', '-')}")
        elif header.get(prefix + "name"):
            bases.append(str(header[prefix + "name"]))
    return bases


def _build_metadata(meta: ModelMetadata, readme: str | None, config: dict | None, adapter: dict | None,
                    tokenizer: dict | None, gguf_header: dict | None, hub_tags: list[str]) -> ModelMetadata:
    """Fill `meta` from the raw pieces (shared by the Hub and local paths)."""
    card: dict[str, Any] = {}
    if readme is not None:
        card, warning = parse_card_metadata(readme)
        if warning:
            meta.warnings.append(warning)
    sources: dict[str, list[str]] = {}
    declared = card.get("base_model")
    card_bases = [declared] if isinstance(declared, str) else [b for b in (declared or []) if isinstance(b, str)]
    if declared is not None and not isinstance(declared, (str, list)):
        meta.warnings.append("model card base_model is neither a string nor a list: ignored")
    sources["card"] = card_bases
    card_tags = card.get("tags") if isinstance(card.get("tags"), list) else []
    meta.tags = list(dict.fromkeys([*hub_tags, *(str(t) for t in card_tags)]))
    tag_bases, tag_relation = parse_base_model_tags(meta.tags)
    sources["tags"] = tag_bases
    if adapter and isinstance(adapter.get("base_model_name_or_path"), str):
        sources["adapter_config"] = [adapter["base_model_name_or_path"]]
    if gguf_header:
        sources["gguf"] = gguf_base_models(gguf_header)
    meta.base_models = list(dict.fromkeys(b for bases in sources.values() for b in bases))
    meta.base_model_sources = {b: [name for name, bases in sources.items() if b in bases] for b in meta.base_models}

    relation = card.get("base_model_relation")
    if relation is not None and relation not in RELATIONS:
        meta.warnings.append(f"model card base_model_relation {relation!r} is not one of {', '.join(RELATIONS)}")
        relation = None
    meta.relation_declared = relation is not None
    if relation is None and meta.base_models:
        relation = tag_relation or ("adapter" if adapter else "quantized" if gguf_header
                                    else "merge" if len(meta.base_models) > 1 else "finetune")
    meta.base_model_relation = relation

    license_tag = next((t.split(":", 1)[1] for t in meta.tags if t.startswith("license:")), None)
    meta.license = card.get("license") if isinstance(card.get("license"), str) else license_tag
    meta.pipeline_tag = meta.pipeline_tag or card.get("pipeline_tag")
    gguf_header = gguf_header or {}
    if meta.license is None and gguf_header.get("general.license"):
        meta.license = str(gguf_header["general.license"])
    config = config or {}
    text_config = config.get("text_config") if isinstance(config.get("text_config"), dict) else {}
    arch = gguf_header.get("general.architecture")
    meta.architectures = list(config.get("architectures") or ([arch] if arch else []))
    meta.model_type = config.get("model_type") or arch
    meta.vocab_size = config.get("vocab_size") or text_config.get("vocab_size") or gguf_header.get(f"{arch}.vocab_size")
    tokens = _vocab_from_tokenizer_json(tokenizer) if tokenizer else gguf_header.get("tokenizer.ggml.tokens") or []
    if tokens:
        meta.tokenizer_vocab_hash = tokenizer_vocab_hash(tokens)
        meta.vocab_size = meta.vocab_size or len(tokens)
    return meta


def _load_json(path: str | os.PathLike | None, name: str, meta: ModelMetadata) -> dict | None:
    if path is None:
        return None
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        meta.warnings.append(f"{name} is unreadable: {type(err).__name__}")
        return None
    return data if isinstance(data, dict) else None


def model_metadata(repo_id: str, revision: str | None = None, token: str | bool | None = None) -> ModelMetadata:
    """Declared lineage and static evidence of a Hub model, pinned to one commit.

    Raises `RepoNotFoundError` (missing / invisible), `GatedRepoError` (files gated without access) and
    `HubOfflineError` (HF_HUB_OFFLINE=1: the caller may continue without metadata).
    """
    with _hub_call(repo_id):
        info = _api(token).model_info(repo_id, revision=revision, files_metadata=True)
    sizes = {s.rfilename: s.size for s in info.siblings or []}
    meta = ModelMetadata(model_id=repo_id, revision=info.sha, pipeline_tag=info.pipeline_tag,
                         gated=info.gated or False, private=bool(info.private), files=sorted(sizes))

    def fetch(name: str) -> str | None:
        return download_file(repo_id, name, revision=info.sha, token=token) if name in sizes else None

    readme_path = fetch("README.md")
    readme = Path(readme_path).read_text(encoding="utf-8", errors="replace") if readme_path else None
    config = _load_json(fetch("config.json"), "config.json", meta)
    adapter = _load_json(fetch("adapter_config.json"), "adapter_config.json", meta)
    tokenizer = None
    if "tokenizer.json" in sizes and (sizes["tokenizer.json"] or 0) <= TOKENIZER_MAX_BYTES:
        tokenizer = _load_json(fetch("tokenizer.json"), "tokenizer.json", meta)
    gguf_files = sorted((p for p in sizes if p.endswith(".gguf")), key=lambda p: sizes[p] or 0)
    header = _remote_gguf_header(repo_id, gguf_files[0], info.sha, token) if gguf_files else None
    return _build_metadata(meta, readme, config, adapter, tokenizer, header, list(info.tags or []))


def _remote_gguf_header(repo_id: str, filename: str, revision: str, token: str | bool | None) -> dict[str, Any]:
    """Read a Hub GGUF file's header with HTTP range requests (the weights are never downloaded)."""
    from huggingface_hub import hf_hub_url
    from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status

    url = hf_hub_url(repo_id, filename, revision=revision)

    def read_prefix(size: int) -> bytes:
        with _hub_call(repo_id):
            headers = {**build_hf_headers(token=token), "Range": f"bytes=0-{size - 1}"}
            response = get_session().get(url, headers=headers, follow_redirects=True)
            hf_raise_for_status(response)
            return response.content[:size]

    return read_gguf_header(read_prefix)


def local_metadata(path: str | os.PathLike) -> ModelMetadata:
    """The same fields as `model_metadata`, read from a local model dir or a single `.gguf` file."""
    from .errors import InvalidInputError

    path = Path(path)
    if not path.exists():
        raise InvalidInputError(f"no such model path: {path}")
    meta = ModelMetadata(model_id=str(path), revision="local", source="local")
    if path.is_file():
        if path.suffix != ".gguf":
            raise InvalidInputError(f"{path} is neither a model directory nor a .gguf file")
        meta.files = [path.name]
        return _build_metadata(meta, None, None, None, None, _local_gguf_header(path), [])
    files = sorted(str(p.relative_to(path)) for p in path.rglob("*") if p.is_file())
    meta.files = files

    def local(name: str) -> Path | None:
        return path / name if (path / name).is_file() else None

    readme = local("README.md")
    tokenizer_path = local("tokenizer.json")
    tokenizer = None
    if tokenizer_path and tokenizer_path.stat().st_size <= TOKENIZER_MAX_BYTES:
        tokenizer = _load_json(tokenizer_path, "tokenizer.json", meta)
    gguf_files = sorted((path / p for p in files if p.endswith(".gguf")), key=lambda p: p.stat().st_size)
    return _build_metadata(meta, readme.read_text(encoding="utf-8", errors="replace") if readme else None,
                           _load_json(local("config.json"), "config.json", meta),
                           _load_json(local("adapter_config.json"), "adapter_config.json", meta), tokenizer,
                           _local_gguf_header(gguf_files[0]) if gguf_files else None, [])


def _local_gguf_header(path: Path) -> dict[str, Any]:
    def read_prefix(size: int) -> bytes:
        with open(path, "rb") as handle:
            return handle.read(size)

    return read_gguf_header(read_prefix)


# ---- weight files read by byte ranges (weight sketches: evidence/weights.py) ---------------------------------------
def repo_file_sizes(repo_id: str, revision: str | None = None,
                    token: str | bool | None = None) -> tuple[str, dict[str, int | None]]:
    """The commit sha a revision points to and the size of every file there, from one `model_info` call."""
    with _hub_call(repo_id):
        info = _api(token).model_info(repo_id, revision=revision, files_metadata=True)
    return info.sha or (revision or "main"), {s.rfilename: s.size for s in info.siblings or []}


def file_size(repo_id: str, filename: str, revision: str | None = None, token: str | bool | None = None,
              repo_type: str = "model") -> int:
    """Size in bytes of one file of a repo (from its metadata; nothing is downloaded)."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_url

    with _hub_call(repo_id, repo_type):
        meta = get_hf_file_metadata(hf_hub_url(repo_id, filename, repo_type=repo_type, revision=revision),
                                    token=token)
    if meta.size is None:
        raise HubError(f"the Hub gave no size for {filename} in {repo_type} repo {repo_id}")
    return int(meta.size)


def read_file_range(repo_id: str, filename: str, start: int, length: int, revision: str | None = None,
                    token: str | bool | None = None, repo_type: str = "model") -> bytes:
    """Bytes ``[start, start + length)`` of one repo file, by an HTTP range request (nothing goes to the cache).

    Fewer bytes come back only at the end of the file. Failures are one-line `HubError`s (`GatedRepoError`, ...).
    """
    from huggingface_hub import hf_hub_url
    from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status

    if length <= 0:
        return b""
    url = hf_hub_url(repo_id, filename, repo_type=repo_type, revision=revision)
    with _hub_call(repo_id, repo_type):
        headers = {**build_hf_headers(token=token), "Range": f"bytes={start}-{start + length - 1}"}
        response = get_session().get(url, headers=headers, follow_redirects=True)
        hf_raise_for_status(response)
        data = response.content
    if response.status_code == 200:  # the server ignored the range: keep the part asked for
        return data[start:start + length]
    return data[:length]
