"""Lineage verification: every hash in a record recomputed from the workspace or the DVC cache; mismatches named."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from tasks.core.atomic_output import json_text
from tasks.lineage.digests import cache_object, cached_listing, dir_listing, file_digest, listing_md5


@dataclass(frozen=True)
class Finding:
    """One recorded path checked against its recorded hashes."""

    path: str
    ok: bool
    detail: str


def expected_hashes(record: dict) -> tuple[dict[str, dict], list[Finding]]:
    """Every path the record hashes -> {md5, sha256?}; a path recorded twice with different md5s is a finding."""
    expected: dict[str, dict] = {}
    conflicts: list[Finding] = []
    entries = [record["artifact"], *record["stage"]["deps"], *record["stage"]["outs"]]
    for link in record.get("upstream", []):
        entries += link["deps"] + link["outs"]
    for entry in entries:
        known = expected.setdefault(entry["path"], {"md5": entry["md5"]})
        if known["md5"] != entry["md5"]:
            detail = f"the record itself holds two md5s for it ({known['md5']}, {entry['md5']})"
            conflicts.append(Finding(entry["path"], False, detail))
        if "sha256" in entry:
            known["sha256"] = entry["sha256"]
    return expected, conflicts


def _check_dir(path: str, md5: str, cache_dir: Path | None) -> Finding:
    """A directory against its recorded DVC hash; on mismatch name the files, from the recorded listing in the cache."""
    root = Path(path)
    if not root.is_dir():
        return Finding(path, False, "recorded as a directory but it is not one")
    listing = dir_listing(root)
    if listing_md5(listing) == md5:
        return Finding(path, True, "workspace")
    recorded = cached_listing(cache_dir, md5) if cache_dir else None
    if recorded is None:
        detail = f"contents differ from the recorded {md5} (its listing is not in the DVC cache to say which files)"
        return Finding(path, False, detail)
    changed = sorted(
        [f"{path}/{rel} (changed)" for rel in recorded.keys() & listing.keys() if recorded[rel] != listing[rel]]
        + [f"{path}/{rel} (added)" for rel in listing.keys() - recorded.keys()]
        + [f"{path}/{rel} (removed)" for rel in recorded.keys() - listing.keys()]
    )
    return Finding(path, False, "differs from the record: " + ", ".join(changed))


def _check_cached(path: str, want: dict, cache_dir: Path | None) -> Finding:
    """A path absent from the workspace, checked against the DVC cache object its md5 names."""
    md5 = want["md5"]
    if cache_dir is not None and md5.endswith(".dir"):
        listing = cached_listing(cache_dir, md5)
        if listing is not None:
            objects = {rel: cache_object(cache_dir, m) for rel, m in listing.items()}
            bad = [rel for rel, obj in objects.items() if not obj.is_file() or file_digest(obj)["md5"] != listing[rel]]
            if not bad:
                return Finding(path, True, "DVC cache (not in the workspace)")
            return Finding(path, False, f"not in the workspace, and the DVC cache's copy is damaged: {', '.join(bad)}")
    elif cache_dir is not None and cache_object(cache_dir, md5).is_file():
        found = file_digest(cache_object(cache_dir, md5))
        if found["md5"] == md5 and found["sha256"] == want.get("sha256", found["sha256"]):
            return Finding(path, True, "DVC cache (not in the workspace)")
        return Finding(path, False, "not in the workspace, and the DVC cache's copy does not match the record")
    return Finding(path, False, "missing from the workspace and the DVC cache: `dvc pull` or `dvc checkout` it")


def check_path(path: str, want: dict, cache_dir: Path | None) -> Finding:
    """Recompute one recorded path's hashes from the workspace, or from the DVC cache when it isn't checked out."""
    if not Path(path).exists():
        return _check_cached(path, want, cache_dir)
    if want["md5"].endswith(".dir"):
        return _check_dir(path, want["md5"], cache_dir)
    found = file_digest(Path(path))
    for algorithm in ("md5", "sha256"):
        if algorithm in want and found[algorithm] != want[algorithm]:
            detail = f"{algorithm} is {found[algorithm]} but the record says {want[algorithm]}: changed since"
            return Finding(path, False, detail)
    return Finding(path, True, "workspace")


def locked_md5(path: str, lock: dict[str, dict]) -> str | None:
    """The md5 dvc.lock holds for an output path, or None when no stage's entry lists it."""
    md5s = [out["md5"] for entry in lock.values() for out in entry.get("outs", []) if out["path"] == path]
    return md5s[0] if md5s else None


def check_record_file(record_path: Path, lock: dict[str, dict]) -> Finding:
    """The record itself against the md5 dvc.lock holds for it (it is a stage output), so editing it shows too."""
    name = record_path.as_posix()
    locked = locked_md5(name, lock)
    if locked is None:
        return Finding(name, True, "not in dvc.lock (stage not locked yet); record not cross-checked")
    found = file_digest(record_path)["md5"]
    if found != locked:
        return Finding(name, False, f"md5 is {found} but dvc.lock says {locked}: the record was edited")
    return Finding(name, True, "matches dvc.lock")


def check_run_facts(record: dict, record_path: Path, lock: dict[str, dict] | None) -> Finding | None:
    """The run-facts file a record names: there, as dvc.lock has it, and written by the run that wrote this record.

    Run facts are no part of a record's hashes (a rerun replaces them and changes nothing else), so they are checked
    against dvc.lock and tied to the record by its md5, never against what an older record holds.
    """
    name = record.get("run_facts")
    if name is None:  # a schema-1 record keeps its run facts inside itself
        return None
    path = Path(name)
    if not path.is_file():
        return Finding(name, False, f"missing: the run facts of {record_path.as_posix()}; `git checkout` it")
    found = file_digest(path)["md5"]
    locked = locked_md5(name, lock) if lock is not None else None
    if locked is not None and found != locked:
        return Finding(name, False, f"md5 is {found} but dvc.lock says {locked}: the run facts were edited")
    try:
        wrote = json.loads(path.read_text()).get("record", {}).get("md5")
    except (ValueError, AttributeError):
        return Finding(name, False, "not a run-facts JSON object")
    record_md5 = file_digest(record_path)["md5"] if record_path.is_file() else None
    if wrote != record_md5:
        detail = f"the facts of a run that wrote another {record_path.as_posix()} (md5 {wrote}, now {record_md5})"
        return Finding(name, False, detail)
    return Finding(name, True, f"run facts of the run that wrote {record_path.as_posix()}")


def check_embedded(path: str, embedded: dict, expected: dict[str, dict]) -> Finding:
    """An embedded record, written out as its stage wrote it, against the md5 the chain records for that file."""
    name = f"{path} (embedded copy)"
    want = expected.get(path, {}).get("md5")
    if want is None:
        return Finding(name, False, "the record embeds a model record it does not hash")
    found = hashlib.md5(json_text(embedded).encode()).hexdigest()
    if found != want:
        return Finding(name, False, f"md5 {found}, but the chain records {want} for {path}: the copy was edited")
    return Finding(name, True, f"is the {path} the chain records")


def verify(record: dict, record_path: Path, lock: dict[str, dict] | None, cache_dir: Path | None) -> list[Finding]:
    """Check every hash in the record and its embedded model record, the records against dvc.lock, and run facts.

    The embedded model record must be, byte for byte, the model record file whose md5 the chain holds; each run-facts
    file must match dvc.lock and name the record its run wrote.
    """
    expected, findings = expected_hashes(record)
    embedded = record.get("model", {}).get("lineage")
    if embedded is not None:
        more, conflicts = expected_hashes(embedded)
        findings += conflicts
        for path, want in more.items():
            expected.setdefault(path, want)
    vgg16 = record.get("features", {}).get("vgg16", {})
    findings += [check_path(path, want, cache_dir) for path, want in expected.items()]
    if "sha256" in vgg16:
        weights = Path(vgg16["path"])
        same = weights.is_file() and file_digest(weights)["sha256"] == vgg16["sha256"]
        findings.append(Finding(str(weights), same, "VGG16 weights" + (" match" if same else " missing or changed")))
    if lock is not None:
        findings.append(check_record_file(record_path, lock))
    records = [(record, record_path)]
    if embedded is not None:
        findings.append(check_embedded(record["model"]["lineage_path"], embedded, expected))
        records.append((embedded, Path(record["model"]["lineage_path"])))
    findings += [f for rec, path in records if (f := check_run_facts(rec, path, lock)) is not None]
    return findings
