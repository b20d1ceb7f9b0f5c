"""Photo files by content hash: ``<root>/<sha[:2]>/<sha>.<ext>``, written atomically, each content once.

The name is always the sha256 of the bytes and an extension of a verified format; nothing a client sent ever
becomes part of a path. A file is written to a temporary name in its final directory, flushed and renamed, so a
reader never sees half a file and two writers of the same content both end with the same complete file.

A file is written before the database row that names it is committed: when the transaction then fails, the
file stays behind as an orphan (harmless: unnamed by any row, and reused by the next upload of the same content).
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

SHA256 = re.compile(r"^[0-9a-f]{64}$")
EXTENSIONS = ("jpg", "png", "webp")
# A stored file's name: what a backup's photo entries must look like too (anything else is refused).
FILE_NAME = re.compile(r"^([0-9a-f]{64})\.(jpg|png|webp)$")


@dataclass(frozen=True)
class PhotoStorage:
    """The directory holding the photo files (``Settings.photos_dir``); created on the first write."""

    root: Path

    def path(self, sha256: str, ext: str) -> Path:
        """Where the file of content ``sha256`` with extension ``ext`` lives; ``ValueError`` for anything but a
        sha256 and a known extension."""
        if not SHA256.match(sha256) or ext not in EXTENSIONS:
            raise ValueError(f"not a stored photo's name: {sha256[:70]!r}.{ext[:10]!r}")
        return self.root / sha256[:2] / f"{sha256}.{ext}"

    def put(self, data: bytes, ext: str) -> str:
        """Store ``data`` under its hash (once: an existing file of that content is kept); returns the hash."""
        sha = hashlib.sha256(data).hexdigest()
        target = self.path(sha, ext)
        if not target.exists():
            _write_atomically(target, data)
        return sha

    def put_verified(self, name: str, blocks: Iterator[bytes]) -> bool:
        """Write a file named ``name`` (``<sha256>.<ext>``) from ``blocks`` unless it exists, after checking that
        the bytes hash to the name; True when written. ``ValueError`` for another name or a hash that differs
        (nothing is left behind)."""
        match = FILE_NAME.match(name)
        if match is None:
            raise ValueError(f"not a stored photo's name: {name[:80]!r}")
        target = self.path(match[1], match[2])
        if target.exists():
            return False
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, temp = tempfile.mkstemp(dir=target.parent, prefix=".incoming-")
        sha = hashlib.sha256()
        try:
            with os.fdopen(handle, "wb") as out:
                for block in blocks:
                    sha.update(block)
                    out.write(block)
                out.flush()
                os.fsync(out.fileno())
            if sha.hexdigest() != match[1]:
                raise ValueError(f"{name}: its content hashes to {sha.hexdigest()}, not to its name")
            os.replace(temp, target)
        finally:
            Path(temp).unlink(missing_ok=True)
        return True

    def read(self, sha256: str, ext: str) -> bytes:
        """The stored bytes; ``FileNotFoundError`` when the file is missing."""
        return self.path(sha256, ext).read_bytes()

    def exists(self, sha256: str, ext: str) -> bool:
        return self.path(sha256, ext).is_file()


def _write_atomically(target: Path, data: bytes) -> None:
    """``data`` at ``target``: a temporary file in the same directory, flushed to disk, then renamed."""
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=target.parent, prefix=".incoming-")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, target)
    finally:
        Path(temp).unlink(missing_ok=True)
