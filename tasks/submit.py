"""Stage submit: check the submission against the competition's format and record a receipt; send it when enabled."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd

from tasks.competition.submission_format import read_submission, validate_submission
from tasks.core.atomic_output import write_json
from tasks.core.errors import run_stage
from tasks.core.params import PARAMS_FILE, Params, load_params, read_params_text
from tasks.core.paths import Paths, load_paths
from tasks.heads.predictions import TEST_FILE, undecodable_test_ids
from tasks.lineage.digests import file_digest
from tasks.lineage.record import record_lineage
from tasks.lineage.run_context import git_state
from tasks.photos.class_list import read_class_list
from tasks.photos.manifest import TEST_SUBSET, in_subset, read_manifest


def test_ids(manifest: Path) -> set[str]:
    """The ids every submission must cover: one per test photo in the split manifest, as the submission writes them."""
    return {e.id for e in in_subset(read_manifest(manifest), TEST_SUBSET)}


def params_digest(params: dict) -> str:
    """SHA-256 of the params in canonical JSON: equal settings give equal digests whatever the YAML layout."""
    return hashlib.sha256(json.dumps(params, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def submission_message(text: str, commit: str | None, digest: str, csv_sha256: str) -> str:
    """The message Kaggle stores with a submission: the user's text plus what produced the CSV.

    The CSV's hash in it lets a later run recognise a CSV already sent, from any machine.
    """
    return f"{text} [commit {(commit or 'none')[:12]} params {digest[:12]} csv {csv_sha256[:16]}]"


def send(params: Params, csv_path: Path, csv_sha256: str, message: str) -> tuple[dict, bool]:
    """Send the CSV unless Kaggle already has it (and submit.force is off); return (Kaggle's record, sent now)."""
    from tasks.kaggle.submissions import find_submission, submit_csv  # the client authenticates on import

    competition = params.download.competition
    if not params.submit.force:
        earlier = find_submission(competition, f"csv {csv_sha256[:16]}")
        if earlier is not None:
            return earlier, False
    record = submit_csv(competition, csv_path, message, poll_timeout_s=params.submit.poll_timeout_s)
    return record, True


def submit(params: Params, paths: Paths, raw_params: dict) -> dict:
    """Validate the submission, send it if submit.enabled, and return the receipt."""
    csv_path = Path(paths.submission)
    frame = read_submission(csv_path)
    header = read_class_list(Path(paths.classes)).submission.header
    validate_submission(frame, test_ids(Path(paths.split)), header, name=str(csv_path))
    git = git_state()
    commit = git["commit"]
    digest = params_digest(raw_params)
    csv_sha256 = file_digest(csv_path)["sha256"]
    receipt = {
        "competition": params.download.competition,
        "submission": str(csv_path),
        "sha256": csv_sha256,
        "rows": len(frame),
        "git_commit": commit,
        "git_dirty": git["dirty"],
        "params_digest": digest,
        "validated": True,
        "sent": False,
        # Rows whose photo is undecodable: their probabilities are the fallback 1/N per class, not a prediction.
        "undecodable_test_ids": undecodable_test_ids(
            pd.read_csv(Path(paths.predictions) / TEST_FILE, dtype={"id": str})
        ),
    }
    if params.submit.enabled:
        message = submission_message(params.submit.message, commit, digest, csv_sha256)
        receipt["kaggle"], receipt["sent"] = send(params, csv_path, csv_sha256, message)
        receipt["already_on_kaggle"] = not receipt["sent"]
    return receipt


def describe(receipt: dict) -> str:
    """One line for the log saying what happened to the submission."""
    kaggle = receipt.get("kaggle")
    if kaggle is None:
        return "validated, not sent (submit.enabled is false)"
    score = kaggle.get("public_score")
    scored = f", public score {score}" if score is not None else f", status {kaggle.get('status')}"
    if receipt["already_on_kaggle"]:
        return f"already on Kaggle as ref {kaggle.get('ref')}, not sent again (submit.force sends anyway){scored}"
    return f"sent to Kaggle as ref {kaggle.get('ref')}{scored}"


def main() -> None:
    raw_params = read_params_text(PARAMS_FILE.read_text())
    params, paths = load_params(), load_paths()
    receipt = submit(params, paths, raw_params)
    write_json(Path(paths.receipt), receipt)
    record_lineage("submit", Path(paths.submission), Path(paths.submission_lineage), Path(paths.submission_run))
    print(f"submit: {receipt['rows']} rows {describe(receipt)}")
    if receipt["undecodable_test_ids"]:
        print(
            f"submit: warning: {len(receipt['undecodable_test_ids'])} rows are fallbacks for test photos that "
            "can't be decoded (listed in the receipt)"
        )


if __name__ == "__main__":
    run_stage("submit", main)
