"""Small file helpers shared by every stage: atomic writes so no partial output is ever left behind."""
from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .errors import InvalidInputError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; move it into place only if the block succeeds."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the mode a plain open() would
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write text to `path` atomically (UTF-8)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def check_writable(path: str | os.PathLike, *, directory: bool, what: str = "") -> None:
    """Raise a one-line `InvalidInputError` unless `path` can be written: a directory (existing or creatable)
    when `directory`, else a file (atomically replaced, so its directory must take new files).

    Tried for real, before any work, and leaving nothing behind: a scratch directory is made and removed in the
    nearest existing parent (permission bits say little for root, and nothing for read-only or virtual file
    systems). `what` names the output in the message ("the report")."""
    out = Path(path).absolute()
    existing = next(p for p in [out, *out.parents] if p.exists())
    prefix = f"cannot write {what + ' to ' if what else ''}{path}"
    if directory and not existing.is_dir():
        raise InvalidInputError(f"{prefix}: {'it' if existing == out else existing} is a file")
    if not directory:
        if out.is_dir():
            raise InvalidInputError(f"{prefix}: it is a directory")
        if existing == out:
            existing = out.parent
        elif not existing.is_dir():
            raise InvalidInputError(f"{prefix}: {existing} is a file")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".hf-dna-write-check-", dir=existing))
    except OSError as err:
        raise InvalidInputError(f"{prefix}: {existing}: {err.strerror or err}") from None
