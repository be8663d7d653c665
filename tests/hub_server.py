"""A small, in-memory, Hub-compatible HTTP server for the tests (never imported by the product).

It answers the endpoints that `huggingface_hub` 2.x and `datasets` (through `HfFileSystem`) use to create repos,
commit files (regular uploads only: no LFS/Xet), open pull requests, list discussions and models, read repo info
(with `cardData` and `base_model:*` tags derived from the README like the real Hub does), list trees and download
files. Storage is git-less: every commit is a full snapshot dict ``path -> bytes`` with a generated sha.

Auth model: tokens map to a user and its orgs (`HubServer.tokens`). Private repos are invisible (401/404
``RepoNotFound``) without a token of their namespace; gated repos show their metadata to anybody but serve files only
to users in `HubRepo.granted` (401/403 ``GatedRepo``), as the real Hub does. Writes need a token of the namespace.
"""
from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

GITATTRIBUTES = b"*.parquet filter=lfs diff=lfs merge=lfs -text\n*.safetensors filter=lfs diff=lfs merge=lfs -text\n"
PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}


def git_blob_sha(data: bytes) -> str:
    """The git blob id of `data` (what the Hub returns as a regular file's oid / ETag)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _now() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


def parse_front_matter(text: str) -> dict | None:
    """The README's YAML front matter as a dict; {} when absent; None when it is not valid YAML / not a mapping."""
    if not text.startswith("---"):
        return {}
    parts = text.split("\n---", 1)
    if len(parts) < 2:
        return None
    try:
        data = yaml.safe_load(parts[0][3:])
    except yaml.YAMLError:
        return None
    return data if isinstance(data, dict) else ({} if data is None else None)


@dataclass
class Commit:
    sha: str
    files: dict[str, bytes]
    parent: str | None
    title: str
    date: str = field(default_factory=_now)


@dataclass
class HubRepo:
    repo_id: str
    repo_type: str
    private: bool = False
    gated: str | bool = False
    granted: set[str] = field(default_factory=set)
    refs: dict[str, str] = field(default_factory=dict)  # "main", "refs/pr/1" -> sha
    commits: dict[str, Commit] = field(default_factory=dict)
    discussions: list[dict] = field(default_factory=list)
    created_at: str = field(default_factory=_now)

    @property
    def namespace(self) -> str:
        return self.repo_id.split("/")[0] if "/" in self.repo_id else ""

    def head(self, revision: str = "main") -> Commit | None:
        if revision in self.commits:
            return self.commits[revision]
        sha = self.refs.get(revision) or self.refs.get(revision.removeprefix("refs/heads/"))
        return self.commits.get(sha) if sha else None

    def commit(self, files: dict[str, bytes], title: str, branch: str = "main", parent: Commit | None = None) -> Commit:
        base = parent if parent is not None else self.head(branch)
        sha = hashlib.sha1(f"{self.repo_id}{uuid.uuid4()}".encode()).hexdigest()
        new = Commit(sha=sha, files=files, parent=base.sha if base else None, title=title)
        self.commits[sha] = new
        self.refs[branch] = sha
        return new


class HubError(Exception):
    """An HTTP error answer: status, X-Error-Code and a message."""

    def __init__(self, status: int, message: str, code: str | None = None, headers: dict | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


class HubServer:
    """Server state plus the HTTP server thread. Use `start()` / `stop()`, `url`, and `seed_repo()` in tests."""

    def __init__(self, tokens: dict[str, dict] | None = None):
        self.tokens = tokens or {}
        self.repos: dict[tuple[str, str], HubRepo] = {}
        self.lock = threading.RLock()
        self.requests: list[tuple[str, str]] = []  # (method, path) log, for tests
        self.stale_commits = 0  # commits refused because parentCommit was not the head (412)
        self._httpd: ThreadingHTTPServer | None = None

    # ---- lifecycle -------------------------------------------------------------------------------------------
    def start(self, host: str = "127.0.0.1", port: int = 0) -> HubServer:
        handler = type("Handler", (_Handler,), {"hub": self})
        self._httpd = ThreadingHTTPServer((host, port), handler)
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, daemon=True, name="hub-server").start()
        return self

    def stop(self) -> None:
        if self._httpd:
            self._httpd.shutdown()
            self._httpd.server_close()

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    # ---- direct state access (test set-up; simulates a git push, bypassing YAML validation) --------------------
    def seed_repo(self, repo_id: str, files: dict[str, bytes | str], repo_type: str = "model", private: bool = False,
                  gated: str | bool = False, granted: set[str] | None = None) -> HubRepo:
        with self.lock:
            repo = HubRepo(repo_id, repo_type, private=private, gated=gated, granted=set(granted or ()))
            repo.commit({".gitattributes": GITATTRIBUTES}, "initial commit")
            data = {k: v.encode() if isinstance(v, str) else v for k, v in files.items()}
            repo.commit({".gitattributes": GITATTRIBUTES, **data}, "Upload files")
            self.repos[(repo_type, repo_id)] = repo
            return repo

    def get_repo(self, repo_id: str, repo_type: str = "model") -> HubRepo | None:
        return self.repos.get((repo_type, repo_id))

    # ---- auth ------------------------------------------------------------------------------------------------
    def user_of(self, authorization: str | None) -> dict | None:
        if not authorization or not authorization.startswith("Bearer "):
            return None
        return self.tokens.get(authorization[len("Bearer "):])

    @staticmethod
    def namespaces(user: dict | None) -> set[str]:
        return {user["name"], *user.get("orgs", ())} if user else set()

    def check_read(self, repo: HubRepo | None, user: dict | None, files: bool, repo_id: str) -> HubRepo:
        if repo is None or (repo.private and repo.namespace not in self.namespaces(user)):
            raise HubError(401 if user is None else 404, f"Repository Not Found for {repo_id}", "RepoNotFound")
        if files and repo.gated and repo.namespace not in self.namespaces(user) and (
                user is None or user["name"] not in repo.granted):
            status = 401 if user is None else 403
            raise HubError(status, f"Access to {repo_id} is restricted. You must have access to it and be "
                                   "authenticated to access it.", "GatedRepo")
        return repo

    def check_write(self, repo_id: str, user: dict | None) -> None:
        if user is None:
            raise HubError(401, "Invalid username or password.")
        namespace = repo_id.split("/")[0] if "/" in repo_id else user["name"]
        if namespace not in self.namespaces(user):
            raise HubError(403, f"You don't have the rights to create or write to {repo_id}")


def repo_info_json(repo: HubRepo, commit: Commit) -> dict:
    """The JSON the Hub returns for GET /api/{type}s/{id}[/revision/{rev}]."""
    readme = commit.files.get("README.md")
    card = parse_front_matter(readme.decode("utf-8", "replace")) if readme is not None else {}
    tags = list((card or {}).get("tags") or []) if isinstance((card or {}).get("tags"), list) else []
    info: dict = {
        "_id": hashlib.md5(repo.repo_id.encode()).hexdigest()[:24],
        "id": repo.repo_id, "author": repo.namespace or None, "sha": commit.sha, "private": repo.private,
        "gated": repo.gated, "disabled": False, "lastModified": commit.date, "createdAt": repo.created_at,
        "downloads": 0, "likes": 0,
        "siblings": [{"rfilename": p, "size": len(d), "blobId": git_blob_sha(d)} for p, d in sorted(commit.files.items())],
    }
    if card is not None and card:
        info["cardData"] = card
    if repo.repo_type == "model":
        card = card or {}
        bases = card.get("base_model") or []
        bases = [bases] if isinstance(bases, str) else [b for b in bases if isinstance(b, str)]
        relation = card.get("base_model_relation")
        if relation is None and bases:
            relation = ("adapter" if "adapter_config.json" in commit.files
                        else "quantized" if any(p.endswith(".gguf") for p in commit.files)
                        else "merge" if len(bases) > 1 else "finetune")
        for base in bases:
            tags += [f"base_model:{base}", f"base_model:{relation}:{base}"]
        if isinstance(card.get("license"), str):
            tags.append(f"license:{card['license']}")
        if card.get("pipeline_tag"):
            info["pipeline_tag"] = card["pipeline_tag"]
        if card.get("library_name"):
            info["library_name"] = card["library_name"]
        config = _json_or_none(commit.files.get("config.json"))
        if isinstance(config, dict):
            info["config"] = {k: config[k] for k in ("architectures", "model_type") if k in config}
            if config.get("model_type"):
                tags.append(config["model_type"])
    info["tags"] = tags
    return info


def _json_or_none(data: bytes | None):
    try:
        return json.loads(data) if data is not None else None
    except ValueError:
        return None


class _Handler(BaseHTTPRequestHandler):
    hub: HubServer
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # keep pytest output quiet
        pass

    # ---- plumbing ------------------------------------------------------------------------------------------
    def _send(self, status: int, body: bytes = b"", headers: dict | None = None, content_type="application/json"):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        for key, value in (headers or {}).items():
            self.send_header(key, str(value))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, data, status: int = 200, headers: dict | None = None) -> None:
        self._send(status, json.dumps(data).encode(), headers)

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _dispatch(self) -> None:
        split = urlsplit(self.path)
        self.query = {k: v for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        self.segments = [unquote(s) for s in split.path.strip("/").split("/")] if split.path.strip("/") else []
        self.user = self.hub.user_of(self.headers.get("Authorization"))
        self.hub.requests.append((self.command, split.path))
        try:
            self._route()
        except HubError as err:
            headers = {"X-Error-Message": err.message, **err.headers}
            if err.code:
                headers["X-Error-Code"] = err.code
            self._json({"error": err.message}, err.status, headers)

    do_GET = do_POST = do_HEAD = do_PUT = _dispatch

    def _q(self, name: str, default: str | None = None) -> str | None:
        return self.query.get(name, [default])[0]

    # ---- routing -------------------------------------------------------------------------------------------
    def _split_repo(self, parts: list[str], repo_type: str) -> tuple[str, list[str]]:
        """Split `org/name/rest...` into (repo_id, rest), preferring a known two-part id."""
        if len(parts) >= 2 and (repo_type, f"{parts[0]}/{parts[1]}") in self.hub.repos:
            return f"{parts[0]}/{parts[1]}", parts[2:]
        if parts and (repo_type, parts[0]) in self.hub.repos:
            return parts[0], parts[1:]
        return "/".join(parts[:2]), parts[2:]

    def _route(self) -> None:
        seg, method = self.segments, self.command
        if seg[:1] == ["api"]:
            rest = seg[1:]
            if rest == ["repos", "create"] and method == "POST":
                return self._create_repo()
            if rest == ["validate-yaml"] and method == "POST":
                return self._validate_yaml()
            if rest == ["whoami-v2"]:
                if self.user is None:
                    raise HubError(401, "Invalid credentials in Authorization header")
                return self._json({"type": "user", "name": self.user["name"],
                                   "orgs": [{"name": o} for o in self.user.get("orgs", ())]})
            if rest and rest[0] in ("models", "datasets", "spaces"):
                repo_type = rest[0][:-1]
                if len(rest) == 1 and method == "GET":
                    return self._list_repos(repo_type)
                repo_id, tail = self._split_repo(rest[1:], repo_type)
                return self._api_repo(repo_type, repo_id, tail)
        else:
            repo_type = "model"
            parts = seg
            if seg[:1] in (["datasets"], ["spaces"]):
                repo_type, parts = seg[0][:-1], seg[1:]
            repo_id, tail = self._split_repo(parts, repo_type)
            if tail[:1] == ["resolve"] and len(tail) >= 3 and method in ("GET", "HEAD"):
                return self._resolve(repo_type, repo_id, tail[1], "/".join(tail[2:]))
        raise HubError(404, f"no route for {method} {self.path}")

    def _api_repo(self, repo_type: str, repo_id: str, tail: list[str]) -> None:
        method, hub = self.command, self.hub
        head = tail[0] if tail else None
        if method == "POST" and head in ("preupload", "commit"):
            hub.check_write(repo_id, self.user)
            repo = hub.check_read(hub.get_repo(repo_id, repo_type), self.user, False, repo_id)
            revision = "/".join(tail[1:]) or "main"
            return self._preupload(repo, revision) if head == "preupload" else self._commit(repo, revision)
        if method == "PUT" and head == "settings":
            hub.check_write(repo_id, self.user)
            repo = hub.check_read(hub.get_repo(repo_id, repo_type), self.user, False, repo_id)
            settings = json.loads(self._body() or b"{}")
            with hub.lock:
                if "gated" in settings:
                    repo.gated = settings["gated"]
                if "private" in settings:
                    repo.private = bool(settings["private"])
            return self._json({})
        repo = hub.check_read(hub.get_repo(repo_id, repo_type), self.user, False, repo_id)
        if head is None and method == "GET":
            return self._json(repo_info_json(repo, self._commit_of(repo, "main")))
        if head == "revision" and method == "GET":
            return self._json(repo_info_json(repo, self._commit_of(repo, "/".join(tail[1:]))))
        if head == "discussions" and method == "GET":
            return self._discussions(repo, tail[1:])
        hub.check_read(repo, self.user, True, repo_id)
        if head == "tree" and method == "GET" and len(tail) >= 2:
            return self._tree(repo, tail[1], "/".join(tail[2:]))
        if head == "paths-info" and method == "POST" and len(tail) >= 2:
            return self._paths_info(repo, "/".join(tail[1:]))
        if head == "refs" and method == "GET":
            branches = [{"name": n, "ref": f"refs/heads/{n}", "targetCommit": s}
                        for n, s in repo.refs.items() if not n.startswith("refs/")]
            return self._json({"branches": branches, "tags": [], "converts": []})
        raise HubError(404, f"no route for {method} {self.path}")

    # ---- handlers ------------------------------------------------------------------------------------------
    def _commit_of(self, repo: HubRepo, revision: str) -> Commit:
        commit = repo.head(revision or "main")
        if commit is None:
            raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        return commit

    def _create_repo(self) -> None:
        payload = json.loads(self._body() or b"{}")
        name, org = payload.get("name"), payload.get("organization")
        repo_type = payload.get("type") or "model"
        if not name:
            raise HubError(400, "repo name is required")
        if self.user is None:
            raise HubError(401, "Invalid username or password.")
        repo_id = f"{org or self.user['name']}/{name}"
        self.hub.check_write(repo_id, self.user)
        with self.hub.lock:
            if (repo_type, repo_id) in self.hub.repos:  # the real Hub also returns the url with the 409
                return self._json({"error": f"You already created this {repo_type} repo",
                                   "url": f"{self._base()}/{PREFIX[repo_type]}{repo_id}"}, 409)
            repo = HubRepo(repo_id, repo_type, private=payload.get("visibility") == "private" or bool(payload.get("private")))
            repo.commit({".gitattributes": GITATTRIBUTES}, "initial commit")
            self.hub.repos[(repo_type, repo_id)] = repo
        self._json({"url": f"{self._base()}/{PREFIX[repo_type]}{repo_id}", "name": repo_id, "id": repo_id})

    def _base(self) -> str:
        return f"http://{self.headers.get('Host')}"

    def _validate_yaml(self) -> None:
        payload = json.loads(self._body() or b"{}")
        if parse_front_matter(payload.get("content", "")) is None:
            return self._json({"errors": [{"message": "Invalid YAML in README.md metadata"}], "warnings": []}, 400)
        self._json({"errors": [], "warnings": []})

    def _preupload(self, repo: HubRepo, revision: str) -> None:
        payload = json.loads(self._body() or b"{}")
        commit = repo.head(revision)
        files = []
        for item in payload.get("files", []):
            existing = commit.files.get(item["path"]) if commit else None
            files.append({"path": item["path"], "uploadMode": "regular", "shouldIgnore": False,
                          "oid": git_blob_sha(existing) if existing is not None else None})
        self._json({"files": files, "commitOid": commit.sha if commit else None})

    def _commit(self, repo: HubRepo, revision: str) -> None:
        lines = [json.loads(line) for line in self._body().splitlines() if line.strip()]
        header = next((x["value"] for x in lines if x["key"] == "header"), {})
        create_pr = self._q("create_pr") in ("1", "true", "True")
        with self.hub.lock:
            base = self._commit_of(repo, revision)
            parent = header.get("parentCommit")
            if parent and parent != base.sha:
                self.hub.stale_commits += 1
                raise HubError(412, "A commit has happened since. Please refresh and try again.")
            files = dict(base.files)
            for item in lines:
                value = item["value"]
                if item["key"] == "file":
                    files[value["path"]] = base64.b64decode(value["content"]) if value.get("encoding") == "base64" \
                        else value["content"].encode()
                elif item["key"] == "deletedFile":
                    if value["path"] not in files:
                        raise HubError(404, "A file with this name doesn't exist", "EntryNotFound")
                    del files[value["path"]]
                elif item["key"] == "deletedFolder":
                    prefix = value["path"].rstrip("/") + "/"
                    files = {p: d for p, d in files.items() if not p.startswith(prefix)}
                elif item["key"] == "lfsFile":
                    raise HubError(400, "this test server accepts regular uploads only")
            title = header.get("summary") or "Upload files"
            url = f"{self._base()}/{PREFIX[repo.repo_type]}{repo.repo_id}"
            if create_pr:
                num = len(repo.discussions) + 1
                branch = f"refs/pr/{num}"
                new = repo.commit(files, title, branch=branch, parent=base)
                changed = sorted(p for p in set(files) | set(base.files) if files.get(p) != base.files.get(p))
                author = self.user["name"]
                repo.discussions.append({
                    "num": num, "title": title, "status": "open", "isPullRequest": True, "createdAt": _now(),
                    "author": {"name": author}, "repo": {"name": repo.repo_id, "type": repo.repo_type},
                    "changes": {"base": f"refs/heads/{revision}"}, "filesWithConflicts": [],
                    "description": header.get("description") or "", "changedFiles": changed,
                    "events": [
                        {"id": uuid.uuid4().hex[:24], "type": "comment", "createdAt": _now(), "author": {"name": author},
                         "data": {"edited": False, "hidden": False, "latest": {"raw": header.get("description") or ""}}},
                        {"id": uuid.uuid4().hex[:24], "type": "commit", "createdAt": _now(), "author": {"name": author},
                         "data": {"subject": title, "oid": new.sha}},
                    ],
                })
                return self._json({"commitUrl": f"{url}/commit/{new.sha}", "commitOid": new.sha,
                                   "pullRequestUrl": f"{url}/discussions/{num}", "success": True})
            new = repo.commit(files, title, branch=revision, parent=base)
        self._json({"commitUrl": f"{url}/commit/{new.sha}", "commitOid": new.sha, "success": True})

    def _discussions(self, repo: HubRepo, tail: list[str]) -> None:
        public_keys = ("num", "title", "status", "isPullRequest", "createdAt", "author", "repo")
        if not tail:
            items = [{k: d[k] for k in public_keys} for d in reversed(repo.discussions)]
            return self._json({"discussions": items, "count": len(items), "start": 0, "numClosedDiscussions": 0})
        found = [d for d in repo.discussions if str(d["num"]) == tail[0]]
        if not found:
            raise HubError(404, f"Discussion {tail[0]} not found")
        discussion = found[0]
        diff = ""
        if self._q("diff"):
            head = repo.head(f"refs/pr/{discussion['num']}")
            for path in discussion["changedFiles"]:
                new_text = head.files.get(path, b"").decode("utf-8", "replace")
                diff += f"diff --git a/{path} b/{path}\n" + "".join(f"+{line}\n" for line in new_text.splitlines())
        self._json({**{k: v for k, v in discussion.items() if k != "changedFiles"}, "diff": diff})

    def _entry(self, commit: Commit, path: str) -> dict:
        if path in commit.files:
            data = commit.files[path]
            return {"type": "file", "path": path, "size": len(data), "oid": git_blob_sha(data),
                    "lastCommit": {"id": commit.sha, "title": commit.title, "date": commit.date}}
        return {"type": "directory", "path": path, "size": 0,
                "oid": hashlib.sha1(f"{commit.sha}:{path}".encode()).hexdigest()}

    @staticmethod
    def _dirs(commit: Commit) -> set[str]:
        return {"/".join(p.split("/")[:i]) for p in commit.files for i in range(1, p.count("/") + 1)}

    def _tree(self, repo: HubRepo, revision: str, path: str) -> None:
        commit = self._commit_of(repo, revision)
        dirs = self._dirs(commit)
        path = path.strip("/")
        if path and path not in dirs:
            raise HubError(404, f"Entry not found: {path}", "EntryNotFound")
        prefix = f"{path}/" if path else ""
        recursive = self._q("recursive", "false").lower() in ("1", "true")
        names = sorted(p for p in set(commit.files) | dirs if p.startswith(prefix) and p != path)
        if not recursive:
            names = [p for p in names if "/" not in p[len(prefix):]]
        self._json([self._entry(commit, p) for p in names])

    def _paths_info(self, repo: HubRepo, revision: str) -> None:
        commit = self._commit_of(repo, revision)
        form = parse_qs(self._body().decode(), keep_blank_values=True)
        paths = form.get("paths", [])
        dirs = self._dirs(commit)
        self._json([self._entry(commit, p.strip("/")) for p in paths
                    if p.strip("/") in commit.files or p.strip("/") in dirs])

    def _resolve(self, repo_type: str, repo_id: str, revision: str, path: str) -> None:
        repo = self.hub.check_read(self.hub.get_repo(repo_id, repo_type), self.user, True, repo_id)
        commit = self._commit_of(repo, revision)
        if path not in commit.files:
            raise HubError(404, f"Entry not found: {path}", "EntryNotFound", {"X-Repo-Commit": commit.sha})
        data = commit.files[path]
        etag = f'"{git_blob_sha(data)}"'
        headers = {"X-Repo-Commit": commit.sha, "ETag": etag, "Accept-Ranges": "bytes"}
        range_header = self.headers.get("Range")
        if range_header and range_header.startswith("bytes=") and self.command == "GET":
            start_text, _, end_text = range_header[6:].partition("-")
            start = int(start_text) if start_text else max(len(data) - int(end_text), 0)
            end = int(end_text) if end_text and start_text else len(data) - 1
            end = min(end, len(data) - 1)
            if start >= len(data):
                return self._send(416, b"", {**headers, "Content-Range": f"bytes */{len(data)}"})
            headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
            return self._send(206, data[start:end + 1], headers, "application/octet-stream")
        self._send(200, data, headers, "application/octet-stream")

    def _list_repos(self, repo_type: str) -> None:
        author, search = self._q("author"), self._q("search")
        limit = int(self._q("limit") or 10_000)
        items = []
        for (kind, repo_id), repo in sorted(self.hub.repos.items()):
            if kind != repo_type or (author and repo.namespace != author) or (search and search not in repo_id):
                continue
            if repo.private and repo.namespace not in self.hub.namespaces(self.user):
                continue
            items.append(repo_info_json(repo, repo.head("main")))
        self._json(items[:limit])


def make_server(tokens: dict[str, dict] | None = None) -> HubServer:
    """A started server on 127.0.0.1 and a free port."""
    return HubServer(tokens).start()


if __name__ == "__main__":  # manual use: python -m tests.hub_server
    server = make_server({"hf_local": {"name": "local", "orgs": []}})
    print(f"HF_ENDPOINT={server.url} HF_TOKEN=hf_local")
    while True:
        time.sleep(3600)
