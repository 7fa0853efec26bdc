"""Content hashes the way DVC writes them in dvc.lock (md5; directories as a `.dir` listing hash), plus sha256."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

CHUNK = 1 << 20


def file_digest(path: Path) -> dict:
    """md5 (DVC's file hash), sha256 and size of a file, read once."""
    md5, sha256 = hashlib.md5(), hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            md5.update(chunk)
            sha256.update(chunk)
            size += len(chunk)
    return {"md5": md5.hexdigest(), "sha256": sha256.hexdigest(), "size": size}


def file_md5(path: Path) -> str:
    """md5 of a file's bytes."""
    return file_digest(path)["md5"]


def dir_listing(root: Path) -> dict[str, str]:
    """Every file under root (posix relative path -> md5), as DVC lists a directory output."""
    return {p.relative_to(root).as_posix(): file_md5(p) for p in sorted(root.rglob("*")) if p.is_file()}


def listing_md5(listing: dict[str, str]) -> str:
    """DVC's hash of a directory: md5 of its JSON listing, suffixed `.dir` (built with DVC's own Tree)."""
    from dvc_data.hashfile.hash_info import HashInfo
    from dvc_data.hashfile.meta import Meta
    from dvc_data.hashfile.tree import Tree

    tree = Tree()
    for relpath, md5 in listing.items():
        tree.add(tuple(relpath.split("/")), Meta(), HashInfo("md5", md5))
    tree.digest()
    return tree.hash_info.value


def dir_digest(root: Path) -> dict:
    """DVC's md5 of a directory, its file count and total size."""
    listing = dir_listing(root)
    size = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    return {"md5": listing_md5(listing), "nfiles": len(listing), "size": size}


def path_digest(path: Path) -> dict:
    """file_digest or dir_digest, whichever path is."""
    return dir_digest(path) if path.is_dir() else file_digest(path)


def cache_object(cache_dir: Path, md5: str) -> Path:
    """Where DVC's local cache (files/md5) keeps the object with this md5."""
    return cache_dir / md5[:2] / md5[2:]


def cached_listing(cache_dir: Path, dir_md5: str) -> dict[str, str] | None:
    """A directory's listing (relpath -> md5) from its `.dir` object in the DVC cache; None if absent or altered."""
    obj = cache_object(cache_dir, dir_md5)
    if not obj.is_file() or file_md5(obj) != dir_md5.removesuffix(".dir"):
        return None
    return {entry["relpath"]: entry["md5"] for entry in json.loads(obj.read_text())}
