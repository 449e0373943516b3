"""Small file helpers every stage shares: content hashes and atomic JSON writes."""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any


def sha256_file(path: str) -> str:
    """Hex sha256 of a file's bytes, read in 4 MiB blocks (token shards can be large)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def write_json(path: str, obj: Any, *, indent: int | None = 1, sort_keys: bool = False) -> None:
    """Writes ``obj`` as JSON through a temporary file and a rename, so a reader never sees half a file."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=indent, sort_keys=sort_keys)
        f.write("\n")
    os.replace(tmp, path)
