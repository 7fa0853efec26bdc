"""Lineage records for the model and the submission: the chain of hashes and params back to the raw archive.

Shown and verified (every recorded hash recomputed, tasks/lineage/check.py) from the shell:
  python -m tasks.lineage show   models/head.keras | data/submission/submission.csv  [--json]
  python -m tasks.lineage verify models/head.keras | data/submission/submission.csv  [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from tasks.core.errors import StageError
from tasks.core.paths import Paths, load_paths
from tasks.core.project_root import enter_project_root
from tasks.core.tool_run import run_tool
from tasks.lineage.check import verify
from tasks.lineage.dvc_project import read_project
from tasks.lineage.show import render


def record_path_for(target: Path, paths: Paths) -> Path:
    """The lineage record of a model or submission path (or the record itself when given one)."""
    records = {paths.model: paths.model_lineage, paths.submission: paths.submission_lineage}
    name = target.as_posix()
    if name in records.values():
        return target
    if name not in records:
        raise StageError(f"no lineage record is kept for {name}; give one of: {', '.join(records)}")
    return Path(records[name])


def _read_json(path: Path) -> dict | None:
    """A JSON file's object, or None when the file is not there."""
    return json.loads(path.read_text()) if path.is_file() else None


def runs_of(record: dict) -> list[tuple[str, dict | None]]:
    """The runs behind a record, labelled, with their facts: this stage's, then training's as this stage saw it.

    A schema-1 record holds its own facts (and its embedded model record the training run's).
    """
    model = record.get("model", {}).get("lineage")
    if "run_facts" not in record:
        return [("this stage", record)] + ([("training", model)] if model else [])
    facts = _read_json(Path(record["run_facts"]))
    runs: list[tuple[str, dict | None]] = [("this stage", facts)]
    if model is not None:
        seen = facts.get("model_run") if facts else None
        runs.append(("training, as this stage found it", seen))
        latest = _read_json(Path(model["run_facts"]))
        if (
            latest is not None and latest != seen
        ):  # train reran since, on the same inputs: its record is the same, its run facts new
            runs.append(("training, rerun since on the same inputs", latest))
    return runs


def report_verify(record: dict, record_path: Path, as_json: bool) -> int:
    """Check record's hashes against the workspace, the DVC cache and dvc.lock; print the findings; 1 if any failed."""
    project = read_project()
    findings = verify(record, record_path, project.lock, project.cache_dir)
    failed = [f for f in findings if not f.ok]
    if as_json:
        print(json.dumps({"ok": not failed, "findings": [asdict(f) for f in findings]}, indent=2))
    else:
        for f in findings:
            print(f"{'ok  ' if f.ok else 'FAIL'}  {f.path}: {f.detail}")
    if failed:
        names = "; ".join(f.path for f in failed)
        artifact = record["artifact"]["path"]
        print(f"verify: {len(failed)} of {len(findings)} checks FAILED for {artifact}: {names}", file=sys.stderr)
        return 1
    print(f"verify: all {len(findings)} recorded hashes match for {record['artifact']['path']}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    """`show` or `verify` the lineage record of a path; the exit status for the shell (1: a check failed)."""
    parser = argparse.ArgumentParser(prog="python -m tasks.lineage", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["show", "verify"])
    parser.add_argument("path", type=Path, help="models/head.keras or data/submission/submission.csv (or its record)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    args = parser.parse_args(argv)
    record_path = record_path_for(args.path, load_paths())
    if not record_path.is_file():
        raise StageError(f"{record_path} not found: reproduce or pull the pipeline first (`dvc repro --pull`)")
    record = json.loads(record_path.read_text())
    if args.command == "show":
        print(json.dumps(record, indent=2) if args.json else render(record, runs_of(record)))
        return 0
    return report_verify(record, record_path, args.json)


def from_any_folder(argv: list[str]) -> list[str]:
    """argv with its path (the second word that is not an option) rewritten for the project's root, now the cwd."""
    words = [i for i, word in enumerate(argv) if not word.startswith("-")]
    if len(words) < 2:
        enter_project_root([])
        return argv
    at = words[1]
    return [*argv[:at], *enter_project_root([argv[at]]), *argv[at + 1 :]]


def cli() -> None:
    """The console script `lesson2-lineage`: `python -m tasks.lineage` from any folder of the checkout."""
    run_tool("lineage", lambda: sys.exit(main(from_any_folder(sys.argv[1:]))))


if __name__ == "__main__":
    run_tool("lineage", lambda: sys.exit(main()))
