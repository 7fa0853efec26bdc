"""Stage submit: check the submission against the competition's format and record a receipt; send it when enabled."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from tasks.atomic_output import atomic_file
from tasks.competition_archive import parse_test_name
from tasks.errors import run_stage
from tasks.lineage import record_lineage
from tasks.params import Params, load_params
from tasks.submission_format import read_submission, validate_submission


def test_ids(organized: Path) -> set[int]:
    """The ids every submission must cover: one per photo in test/unknown."""
    return {parse_test_name(p.name) for p in (organized / "test" / "unknown").iterdir()}


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def submit(params: Params) -> dict:
    """Validate the submission, send it if submit.enabled, and return the receipt."""
    csv_path = Path(params.paths.submission)
    frame = read_submission(csv_path)
    validate_submission(frame, test_ids(Path(params.paths.organized)), name=str(csv_path))
    receipt = {
        "competition": params.download.competition,
        "submission": str(csv_path),
        "sha256": file_sha256(csv_path),
        "rows": len(frame),
        "validated": True,
        "sent": False,
    }
    if params.submit.enabled:
        from tasks.kaggle_source import submit_csv  # the client authenticates on import: only when sending

        receipt["kaggle"] = submit_csv(params.download.competition, csv_path, params.submit.message)
        receipt["sent"] = True
    return receipt


def main() -> None:
    params = load_params()
    receipt = submit(params)
    with atomic_file(Path(params.paths.receipt)) as tmp:
        tmp.write_text(json.dumps(receipt, indent=2) + "\n")
    record_lineage("submit", Path(params.paths.submission), Path(params.paths.submission_lineage))
    state = "sent to Kaggle" if receipt["sent"] else "validated, not sent (submit.enabled is false)"
    print(f"submit: {receipt['rows']} rows {state}")


if __name__ == "__main__":
    run_stage("submit", main)
