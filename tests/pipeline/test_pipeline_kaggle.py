"""The DAG with download.source: kaggle and submit.enabled, the real client against the fake Kaggle server."""

import json
from pathlib import Path

import pandas as pd
import pytest

from tasks.competition.log_loss import binary_log_loss
from tasks.core.errors import StageError
from tasks.download import download
from tests.support.kaggle_fake import CANARY_KEY, CANARY_TOKEN
from tests.support.params import download_params
from tests.support.workspace import dvc, make_workspace, stages_ran, write_params

KAGGLE_RUN = {
    "download": {"source": "kaggle"},
    "split": {"valid_size": 2, "sample_train_size": 2, "sample_valid_size": 1},
    "submit": {"enabled": True, "poll_timeout_s": 60},
}


def test_without_credentials_download_explains_and_writes_nothing(kaggle_home: Path, tmp_path: Path):
    target = tmp_path / "raw" / "dogs-vs-cats-redux-kernels-edition.zip"
    with pytest.raises(StageError) as err:
        download(download_params(source="kaggle"), target)
    message = str(err.value)
    for name in ("KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_API_TOKEN", "kaggle.json", "KAGGLE_CONFIG_DIR", "synthetic"):
        assert name in message
    assert not target.exists() and (not target.parent.exists() or not any(target.parent.iterdir()))


def test_the_stage_exits_non_zero_with_one_line(kaggle_home: Path, tmp_path: Path):
    workspace = make_workspace(tmp_path / "ws", {"download": {"source": "kaggle"}})
    result = dvc(workspace, "repro", "download", check=False)
    assert result.returncode != 0
    assert "error: download:" in result.stderr and "KAGGLE_USERNAME" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (workspace / "data" / "raw").exists() or not any((workspace / "data" / "raw").glob("*.zip"))


def _secrets_in(root: Path) -> list[Path]:
    """Files under root that contain a canary secret."""
    found = []
    for path in root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            if CANARY_KEY.encode() in data or CANARY_TOKEN.encode() in data:
                found.append(path)
    return found


def test_dag_downloads_from_kaggle_submits_and_records_the_score(kaggle_server, kaggle_archive, tmp_path: Path):
    kaggle_server.polls_until_scored = 0
    workspace = make_workspace(tmp_path / "ws", KAGGLE_RUN)
    result = dvc(workspace, "repro")
    assert stages_ran(result.stdout)[0] == "download"
    # The Kaggle modules' log lines reach the user through run_stage's logging, with no secret in them.
    assert "INFO tasks.kaggle.source: downloaded dogs-vs-cats-redux-kernels-edition to " in result.stderr
    assert "INFO tasks.kaggle.submissions: submitted " in result.stderr
    assert CANARY_KEY not in result.stdout + result.stderr and CANARY_TOKEN not in result.stdout + result.stderr
    assert (workspace / "data/raw/dogs-vs-cats-redux-kernels-edition.zip").read_bytes() == kaggle_archive.data
    # No local archive: download depends on the committed placeholder, so a second repro downloads nothing.
    assert stages_ran(dvc(workspace, "repro", "download").stdout) == []

    receipt = json.loads((workspace / "data/submission/receipt.json").read_text())
    csv = (workspace / "data/submission/submission.csv").read_bytes()
    assert receipt["sent"] is True and len(kaggle_server.submissions) == 1
    assert kaggle_server.submissions[0].content == csv
    frame = pd.read_csv(workspace / "data/submission/submission.csv")
    truth = frame["id"].map(kaggle_archive.test_labels)
    assert receipt["kaggle"]["public_score"] == pytest.approx(binary_log_loss(truth, frame["label"]), abs=1e-5)
    assert receipt["kaggle"]["status"] == "complete"
    assert receipt["params_digest"][:12] in receipt["kaggle"]["message"]
    assert receipt["git_commit"][:12] in receipt["kaggle"]["message"]

    # The same CSV again (forced rerun of submit): recognised on Kaggle, not sent a second time.
    again = dvc(workspace, "repro", "--force", "--single-item", "submit")
    assert "not sent again" in again.stdout
    assert len(kaggle_server.submissions) == 1
    resent = json.loads((workspace / "data/submission/receipt.json").read_text())
    assert resent["sent"] is False and resent["already_on_kaggle"] is True
    assert resent["kaggle"]["ref"] == receipt["kaggle"]["ref"]

    write_params(workspace, {**KAGGLE_RUN, "submit": {**KAGGLE_RUN["submit"], "force": True}})
    dvc(workspace, "repro")
    assert len(kaggle_server.submissions) == 2
    assert _secrets_in(workspace) == []
