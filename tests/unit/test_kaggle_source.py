"""The Kaggle source against the fake Kaggle server: the real kaggle client, every failure a user can meet."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

from tasks.core.errors import StageError
from tasks.kaggle.credentials import CredentialSource, find_credentials
from tasks.kaggle.source import download_competition
from tasks.kaggle.submissions import submit_csv
from tests.support.kaggle_fake import (
    CANARY_KEY,
    CANARY_TOKEN,
    CANARY_USER,
    COMPETITION,
    CompetitionArchive,
    FakeKaggle,
    build_competition_archive,
    log_loss,
)

FAST = {"attempts": 3, "backoff_s": 0.01}  # real backoff starts at 2 s; the retry logic is the same
FAST_POLL = {"poll_interval_s": 0.01, "poll_timeout_s": 5.0}
ENV_PAIR = "KAGGLE_USERNAME and KAGGLE_KEY"


def _empty_zip() -> bytes:
    """A zip that holds a folder and no file."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("train/", b"")
    return out.getvalue()


def entries(directory: Path) -> list[str]:
    """Everything in directory, hidden files included."""
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


def write_submission(path: Path, labels: dict[int, int], confident: float = 0.9) -> Path:
    """A CSV in the competition's format that leans towards the true labels."""
    rows = "".join(f"{i},{confident if label else 1 - confident}\n" for i, label in labels.items())
    path.write_text("id,label\n" + rows)
    return path


# ---------------------------------------------------------------- credentials


def test_credentials_from_username_and_key_env(kaggle_home: Path) -> None:
    env = {"HOME": str(kaggle_home), "KAGGLE_USERNAME": CANARY_USER, "KAGGLE_KEY": CANARY_KEY}
    assert find_credentials(env) == CredentialSource("api_key", ENV_PAIR, kaggle_home / ".kaggle")


def test_credentials_from_token_env_value_and_token_file(kaggle_home: Path, tmp_path: Path) -> None:
    assert find_credentials({"HOME": str(kaggle_home), "KAGGLE_API_TOKEN": CANARY_TOKEN}).origin == "KAGGLE_API_TOKEN"
    token_file = tmp_path / "token"
    token_file.write_text(CANARY_TOKEN + "\n")
    token_file.chmod(0o600)
    found = find_credentials({"HOME": str(kaggle_home), "KAGGLE_API_TOKEN": str(token_file)})
    assert (found.kind, found.origin) == ("access_token", f"the file named by KAGGLE_API_TOKEN ({token_file})")


def test_credentials_from_access_token_file_and_oauth_cache(kaggle_home: Path) -> None:
    oauth = kaggle_home / ".kaggle" / "credentials.json"
    oauth.write_text(json.dumps({"refresh_token": CANARY_TOKEN, "username": CANARY_USER}))
    oauth.chmod(0o600)
    expected = CredentialSource("oauth", str(oauth), kaggle_home / ".kaggle")
    assert find_credentials({"HOME": str(kaggle_home)}) == expected
    token = kaggle_home / ".kaggle" / "access_token"
    token.write_text(CANARY_TOKEN)
    token.chmod(0o600)
    assert find_credentials({"HOME": str(kaggle_home)}).origin == str(token)  # a token comes first, as in the client


def test_credentials_from_kaggle_json_in_home_and_in_config_dir(kaggle_home: Path, tmp_path: Path) -> None:
    in_home = kaggle_home / ".kaggle" / "kaggle.json"
    in_home.write_text(json.dumps({"username": CANARY_USER, "key": CANARY_KEY}))
    in_home.chmod(0o600)
    assert find_credentials({"HOME": str(kaggle_home)}) == CredentialSource("api_key", str(in_home), in_home.parent)

    config_dir = tmp_path / "elsewhere"
    config_dir.mkdir()
    (config_dir / "kaggle.json").write_text(json.dumps({"username": CANARY_USER, "key": CANARY_KEY}))
    (config_dir / "kaggle.json").chmod(0o600)
    found = find_credentials({"HOME": str(kaggle_home), "KAGGLE_CONFIG_DIR": str(config_dir)})
    assert found == CredentialSource("api_key", str(config_dir / "kaggle.json"), config_dir)
    mixed = find_credentials({"HOME": str(kaggle_home), "KAGGLE_KEY": CANARY_KEY})  # env overrides the file's key
    assert mixed.origin == f"{in_home} and KAGGLE_KEY"


def test_no_credentials_names_every_source_and_the_offline_way(kaggle_home: Path) -> None:
    with pytest.raises(StageError) as caught:
        find_credentials({"HOME": str(kaggle_home)})
    assert str(caught.value) == (
        "no Kaggle credentials found. Set KAGGLE_USERNAME and KAGGLE_KEY, or KAGGLE_API_TOKEN (a token, or the path "
        "of a file holding one), or save kaggle.json from https://www.kaggle.com/settings/api as "
        "~/.kaggle/kaggle.json (or in the directory named by KAGGLE_CONFIG_DIR) with chmod 600; a token saved as "
        "~/.kaggle/access_token or a `kaggle auth login` (~/.kaggle/credentials.json) works too. To run without "
        "Kaggle, set download.source to synthetic (generated images) or archive (a local copy of the competition "
        "zip) in params.yaml."
    )


def test_half_a_key_pair_is_named_in_the_message(kaggle_home: Path) -> None:
    with pytest.raises(StageError, match=r"Found: a username comes from KAGGLE_USERNAME but no key \(KAGGLE_KEY"):
        find_credentials({"HOME": str(kaggle_home), "KAGGLE_USERNAME": CANARY_USER})


def test_token_variable_naming_an_empty_file_falls_back_to_a_key_as_the_client_does(
    kaggle_home: Path, tmp_path: Path
) -> None:
    (tmp_path / "empty").write_text("")
    (kaggle_home / ".kaggle" / "access_token").write_text(CANARY_TOKEN)
    env = {
        "HOME": str(kaggle_home),
        "KAGGLE_API_TOKEN": str(tmp_path / "empty"),
        "KAGGLE_USERNAME": CANARY_USER,
        "KAGGLE_KEY": CANARY_KEY,
    }
    assert find_credentials(env).origin == ENV_PAIR


def test_missing_credentials_stop_before_kaggle_is_imported(kaggle_home: Path, tmp_path: Path) -> None:
    """Importing kaggle without credentials prints help and tries to log in; a fresh process shows we never do."""
    script = textwrap.dedent("""
        import sys
        from pathlib import Path
        from tasks.core.errors import StageError
        from tasks.kaggle.source import download_competition
        try:
            download_competition("c", Path(sys.argv[1]))
        except StageError as err:
            print("kaggle imported:", "kaggle" in sys.modules, "|", str(err).split(".")[0])
    """)
    repo = Path(__file__).resolve().parents[2]
    run = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "c.zip")],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(repo)},
        cwd=repo,
        timeout=60,
    )
    assert (run.stdout, run.stderr) == ("kaggle imported: False | no Kaggle credentials found\n", "")
    assert entries(tmp_path) == ["home"]


def test_kaggle_json_readable_by_others_warns(kaggle_home: Path, caplog: pytest.LogCaptureFixture) -> None:
    config = kaggle_home / ".kaggle" / "kaggle.json"
    config.write_text(json.dumps({"username": CANARY_USER, "key": CANARY_KEY}))
    config.chmod(0o600)
    with caplog.at_level(logging.WARNING, logger="tasks.kaggle.credentials"):
        find_credentials({"HOME": str(kaggle_home)})
        assert caplog.records == []
        config.chmod(0o644)
        find_credentials({"HOME": str(kaggle_home)})
    assert [r.getMessage() for r in caplog.records] == [
        f"{config} holds a Kaggle secret and is readable by other users; run: chmod 600 {config}"
    ]


# ---------------------------------------------------------------- download


def test_download_writes_the_verified_archive_and_nothing_else(kaggle_server: FakeKaggle, tmp_path: Path) -> None:
    target = tmp_path / "raw" / f"{COMPETITION}.zip"
    download_competition(COMPETITION, target)
    assert target.read_bytes() == kaggle_server.archive.data
    with zipfile.ZipFile(target) as archive:
        assert {"train.zip", "test.zip", "sample_submission.csv"} <= set(archive.namelist())
    assert entries(target.parent) == [target.name]


def test_download_with_an_access_token(
    kaggle_server: FakeKaggle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KAGGLE_USERNAME")
    monkeypatch.delenv("KAGGLE_KEY")
    monkeypatch.setenv("KAGGLE_API_TOKEN", CANARY_TOKEN)
    target = tmp_path / "raw" / "c.zip"
    download_competition(COMPETITION, target)
    assert target.read_bytes() == kaggle_server.archive.data
    assert kaggle_server.calls("/IntrospectToken") >= 1  # the client checks a token before using it


def test_download_with_a_refused_token_says_so(
    kaggle_server: FakeKaggle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KAGGLE_USERNAME")
    monkeypatch.delenv("KAGGLE_KEY")
    monkeypatch.setenv("KAGGLE_API_TOKEN", "canary-token-revoked-0000")
    with pytest.raises(StageError) as caught:
        download_competition(COMPETITION, tmp_path / "raw" / "c.zip", **FAST)
    assert str(caught.value) == (
        "Kaggle did not accept the access token from KAGGLE_API_TOKEN. "
        "Create a new token at https://www.kaggle.com/settings/api."
    )
    assert entries(tmp_path / "raw") == []


def test_download_403_says_to_accept_the_rules(kaggle_server: FakeKaggle, tmp_path: Path) -> None:
    kaggle_server.rules_accepted = False
    with pytest.raises(StageError) as caught:
        download_competition(COMPETITION, tmp_path / "raw" / "c.zip", **FAST)
    assert str(caught.value) == (
        f"Kaggle refused access to competition '{COMPETITION}' (HTTP 403): its rules have not been accepted by the "
        f"account whose credentials come from {ENV_PAIR}. Sign in to kaggle.com as that account, accept the rules at "
        f"https://www.kaggle.com/competitions/{COMPETITION}/rules and run again (the API cannot accept them for you)."
    )
    assert entries(tmp_path / "raw") == []
    assert kaggle_server.calls("/DownloadDataFiles") == 1  # not retried: waiting will not accept the rules


def test_download_401_says_the_credentials_are_wrong(
    kaggle_server: FakeKaggle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KAGGLE_KEY", "canary-key-wrong-1234")
    with pytest.raises(StageError) as caught:
        download_competition(COMPETITION, tmp_path / "raw" / "c.zip", **FAST)
    assert str(caught.value) == (
        f"Kaggle rejected the credentials from {ENV_PAIR} (HTTP 401). Check them, or create a new API token at "
        "https://www.kaggle.com/settings/api."
    )
    assert entries(tmp_path / "raw") == []


def test_download_404_says_there_is_no_such_competition(kaggle_server: FakeKaggle, tmp_path: Path) -> None:
    with pytest.raises(StageError) as caught:
        download_competition("dogs-vs-cats-typo", tmp_path / "raw" / "c.zip", **FAST)
    assert str(caught.value) == (
        "Kaggle has no competition 'dogs-vs-cats-typo' (HTTP 404). Check the name: it is the last part of the "
        "competition's address, https://www.kaggle.com/competitions/<name>."
    )
    assert entries(tmp_path / "raw") == []


@pytest.mark.parametrize(
    ("endpoint", "fault", "reason"),
    [
        ("DownloadDataFiles", 429, "rate limited (HTTP 429)"),
        ("DownloadDataFiles", 500, "server error (HTTP 500)"),
        ("storage", 503, "server error (HTTP 503)"),
        ("DownloadDataFiles", "drop", "connection dropped (ConnectionError)"),
    ],
)
def test_download_retries_transient_failures(
    kaggle_server: FakeKaggle,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    endpoint: str,
    fault: int | str,
    reason: str,
) -> None:
    kaggle_server.fail(endpoint, fault)
    target = tmp_path / "raw" / "c.zip"
    with caplog.at_level(logging.WARNING, logger="tasks.kaggle.client"):
        download_competition(COMPETITION, target, **FAST)
    assert target.read_bytes() == kaggle_server.archive.data
    assert [r.getMessage() for r in caplog.records] == [
        f"downloading {COMPETITION}: {reason}; attempt 1 of 3, retrying in 0.0 s"
    ]


def test_download_resumes_after_a_truncated_body(kaggle_server: FakeKaggle, tmp_path: Path) -> None:
    # The client writes in 1 MiB pieces: only a bigger archive leaves a partial file worth resuming.
    kaggle_server.archive = build_competition_archive(padding_bytes=3 * 2**20)
    kaggle_server.fail("storage", "truncate")
    target = tmp_path / "raw" / "c.zip"
    download_competition(COMPETITION, target, **FAST)
    assert target.read_bytes() == kaggle_server.archive.data
    ranges = [r for method, path, r in kaggle_server.seen if method == "GET" and r]
    assert ranges == [f"bytes={2**20}-"]  # the second attempt asked for what followed the first whole MiB
    assert entries(target.parent) == [target.name]


def test_download_that_keeps_breaking_off_gives_up_cleanly(kaggle_server: FakeKaggle, tmp_path: Path) -> None:
    kaggle_server.fail("storage", "truncate", "truncate", "truncate")
    with pytest.raises(StageError) as caught:
        download_competition(COMPETITION, tmp_path / "raw" / "c.zip", **FAST)
    assert str(caught.value) == (
        f"downloading {COMPETITION} failed 3 times, last because connection dropped (ChunkedEncodingError). "
        "Kaggle may be busy or unreachable: try again later."
    )
    assert entries(tmp_path / "raw") == []


def test_rate_limit_that_never_lifts_gives_up_after_the_bound(kaggle_server: FakeKaggle, tmp_path: Path) -> None:
    kaggle_server.fail("DownloadDataFiles", 429, 429, 429, 429)
    with pytest.raises(StageError, match=r"failed 3 times, last because rate limited \(HTTP 429\)"):
        download_competition(COMPETITION, tmp_path / "raw" / "c.zip", **FAST)
    assert kaggle_server.calls("/DownloadDataFiles") == 3
    assert entries(tmp_path / "raw") == []


def test_any_competition_downloads_whatever_its_zip_holds(kaggle_server: FakeKaggle, tmp_path: Path) -> None:
    """A competition whose zip is a plain tree (no inner zips, no sample_submission.csv) is kept as sent."""
    tree = io.BytesIO()
    with zipfile.ZipFile(tree, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("train/", b"")
        for name in ("train/c0/img_1.jpg", "train/c9/img_2.jpg", "test/img_3.jpg", "labels.csv"):
            archive.writestr(name, name.encode())
    kaggle_server.archive = CompetitionArchive(tree.getvalue(), {})
    kaggle_server.competition = "state-farm-distracted-driver-detection"
    target = tmp_path / "raw" / "c.zip"
    download_competition("state-farm-distracted-driver-detection", target, **FAST)
    assert target.read_bytes() == tree.getvalue()
    assert entries(target.parent) == [target.name]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            b"<html>not a zip</html>",
            f"Kaggle sent something that is not a zip archive for '{COMPETITION}'; run again later.",
        ),
        (_empty_zip(), f"the archive of '{COMPETITION}' holds no files; is it the right competition?"),
    ],
    ids=["not a zip", "no files"],
)
def test_an_archive_that_is_no_dataset_is_refused(
    kaggle_server: FakeKaggle, tmp_path: Path, data: bytes, message: str
) -> None:
    kaggle_server.archive = CompetitionArchive(data, {})
    with pytest.raises(StageError) as caught:
        download_competition(COMPETITION, tmp_path / "raw" / "c.zip", **FAST)
    assert str(caught.value) == message
    assert entries(tmp_path / "raw") == []


# ---------------------------------------------------------------- submit


def test_submit_returns_the_fake_score(kaggle_server: FakeKaggle, tmp_path: Path) -> None:
    csv_path = write_submission(tmp_path / "submission.csv", kaggle_server.archive.test_labels)
    receipt = submit_csv(COMPETITION, csv_path, "commit abc123 params 5f3e", **FAST_POLL)
    expected = round(log_loss(csv_path.read_bytes(), kaggle_server.archive.test_labels), 5)
    assert {k: receipt[k] for k in ("competition", "status", "public_score", "message", "file_name")} == {
        "competition": COMPETITION,
        "status": "complete",
        "public_score": expected,
        "message": "commit abc123 params 5f3e",
        "file_name": "submission.csv",
    }
    assert receipt["ref"] == kaggle_server.submissions[0].ref
    assert json.loads(json.dumps(receipt)) == receipt
    assert kaggle_server.submissions[0].content == csv_path.read_bytes()


def test_submit_with_a_fixed_score_after_transient_failures(kaggle_server: FakeKaggle, tmp_path: Path) -> None:
    kaggle_server.fixed_score = 0.04321
    kaggle_server.polls_until_scored = 3
    kaggle_server.fail("StartSubmissionUpload", 500)
    kaggle_server.fail("upload", 503)
    kaggle_server.fail("CreateSubmission", 429)
    kaggle_server.fail("ListSubmissions", "drop")
    csv_path = write_submission(tmp_path / "submission.csv", kaggle_server.archive.test_labels)
    receipt = submit_csv(COMPETITION, csv_path, "m", **FAST, **FAST_POLL)
    assert (receipt["status"], receipt["public_score"], len(kaggle_server.submissions)) == ("complete", 0.04321, 1)


def test_a_lost_answer_to_create_submission_does_not_submit_twice(kaggle_server: FakeKaggle, tmp_path: Path) -> None:
    kaggle_server.fail("CreateSubmission", "lose-answer")
    csv_path = write_submission(tmp_path / "submission.csv", kaggle_server.archive.test_labels)
    receipt = submit_csv(COMPETITION, csv_path, "only once", **FAST, **FAST_POLL)
    assert [s.ref for s in kaggle_server.submissions] == [receipt["ref"]]


def test_submission_never_scored_returns_pending_within_the_bound(kaggle_server: FakeKaggle, tmp_path: Path) -> None:
    kaggle_server.never_scores = True
    csv_path = write_submission(tmp_path / "submission.csv", kaggle_server.archive.test_labels)
    receipt = submit_csv(COMPETITION, csv_path, "m", poll_interval_s=0.05, poll_timeout_s=0.3)
    assert (receipt["status"], receipt["public_score"]) == ("pending", None)
    assert receipt["ref"] == kaggle_server.submissions[0].ref
    assert kaggle_server.calls("/ListSubmissions") <= 1 + 0.3 / 0.05 + 1  # the snapshot, then bounded polls


def test_submit_without_the_csv_says_so(kaggle_server: FakeKaggle, tmp_path: Path) -> None:
    with pytest.raises(StageError) as caught:
        submit_csv(COMPETITION, tmp_path / "missing.csv", "m", **FAST_POLL)
    assert str(caught.value) == f"there is no submission file at {tmp_path / 'missing.csv'}"
    assert kaggle_server.seen == []


def test_submit_403_says_to_accept_the_rules(kaggle_server: FakeKaggle, tmp_path: Path) -> None:
    kaggle_server.rules_accepted = False
    csv_path = write_submission(tmp_path / "submission.csv", kaggle_server.archive.test_labels)
    rules = rf"accept the rules at https://www.kaggle.com/competitions/{COMPETITION}/rules"
    with pytest.raises(StageError, match=rules):
        submit_csv(COMPETITION, csv_path, "m", **FAST, **FAST_POLL)
    assert kaggle_server.submissions == []


def test_submit_that_kaggle_cannot_score_is_an_error(kaggle_server: FakeKaggle, tmp_path: Path) -> None:
    csv_path = tmp_path / "submission.csv"
    csv_path.write_text("id,label\n1,0.5\n")
    with pytest.raises(StageError) as caught:
        submit_csv(COMPETITION, csv_path, "m", **FAST_POLL)
    ref = kaggle_server.submissions[0].ref
    assert str(caught.value) == (
        f"Kaggle could not score submission {ref} (submission.csv): Submission must have 4 rows, one per test id. "
        "Compare the CSV with sample_submission.csv."
    )


# ---------------------------------------------------------------- secrets


def test_secrets_never_leak(
    kaggle_server: FakeKaggle,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Successes and failures alike: no canary in output, logs, messages, receipts or written files."""
    seen: list[str] = []
    messages: list[str] = []
    caplog.set_level(logging.DEBUG)
    target = tmp_path / "raw" / "c.zip"
    kaggle_server.fail("storage", "truncate")
    kaggle_server.fail("DownloadDataFiles", 500)
    download_competition(COMPETITION, target, **FAST)
    csv_path = write_submission(tmp_path / "submission.csv", kaggle_server.archive.test_labels)
    seen.append(json.dumps(submit_csv(COMPETITION, csv_path, "m", **FAST_POLL)))

    def failure(competition: str = COMPETITION) -> None:
        with pytest.raises(StageError) as caught:
            download_competition(competition, tmp_path / "raw" / "d.zip", **FAST)
        messages.append(str(caught.value))

    kaggle_server.fail("DownloadDataFiles", 500, 500, 500)
    failure()  # retries exhausted
    failure("other")  # 404
    kaggle_server.rules_accepted = False
    failure()  # 403
    monkeypatch.setenv("KAGGLE_KEY", "canary-key-wrong-1234")
    failure()  # 401
    out, err = capfd.readouterr()
    seen += [out, err] + [r.getMessage() for r in caplog.records]
    seen += [p.read_bytes().decode("latin-1") for p in tmp_path.rglob("*") if p.is_file()]
    assert [m.split(" (")[0] for m in messages] == [  # every failure was met
        f"downloading {COMPETITION} failed 3 times, last because server error",
        "Kaggle has no competition 'other'",
        f"Kaggle refused access to competition '{COMPETITION}'",
        f"Kaggle rejected the credentials from {ENV_PAIR}",
    ]
    seen += messages
    for canary in (CANARY_KEY, "canary-key-wrong-1234", "canary-key"):
        assert not [text for text in seen if canary in text]


def test_token_does_not_leak_even_with_the_client_verbose(
    kaggle_server: FakeKaggle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fresh process, as under `dvc repro`: kaggle's import-time login must not print the token."""
    monkeypatch.delenv("KAGGLE_USERNAME")
    monkeypatch.delenv("KAGGLE_KEY")
    monkeypatch.setenv("KAGGLE_API_TOKEN", CANARY_TOKEN)
    monkeypatch.setenv("VERBOSE", "1")
    script = textwrap.dedent(f"""
        import logging, sys
        from pathlib import Path
        from tasks.kaggle.source import download_competition
        logging.basicConfig(level=logging.DEBUG)
        download_competition({COMPETITION!r}, Path(sys.argv[1]))
        print("done")
    """)
    repo = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(repo)}
    run = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "c.zip")],
        capture_output=True,
        text=True,
        env=env,
        cwd=repo,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip().endswith("done")
    assert "IntrospectToken" in run.stderr  # the debug log did record the client's calls
    assert CANARY_TOKEN not in run.stdout + run.stderr
