"""The user's archive through real `dvc repro` runs: never linked into the workspace or DVC's cache, and download
and reorganize recover from kill -9 and a full disk.

A stage is stopped at an exact point by a test-only audit hook (PEP 578) that a sitecustomize on PYTHONPATH installs
in every Python process of the run: at the Nth matching event the process sends itself SIGSTOP, and the test then
kills the whole tree with SIGKILL. No timing, no stage code changed for the test.
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from tasks.competition.synthetic import build_synthetic_archive
from tasks.reorganize import reorganize
from tests.support.params import reorganize_params
from tests.support.photos import store_bytes
from tests.support.workspace import make_workspace, stages_ran, tool_env

RAW = "data/raw/dogs-vs-cats-redux-kernels-edition.zip"
FREEZER = '''
"""Test instrument: SIGSTOP this process at the FREEZE_AFTER-th audit event FREEZE_EVENT on a FREEZE_PATH match."""
import fnmatch, os, signal, sys

_EVENT, _PATH = os.environ.get("FREEZE_EVENT"), os.environ.get("FREEZE_PATH")
_AFTER = int(os.environ.get("FREEZE_AFTER", 1))
_seen = 0


def _hook(event, args):
    global _seen
    if event != _EVENT or not isinstance(args[0], (str, os.PathLike)) or not fnmatch.fnmatch(os.fspath(args[0]), _PATH):
        return
    if event == "open" and not (isinstance(args[1], str) and "w" in args[1]):  # writes only
        return
    _seen += 1
    if _seen == _AFTER:
        os.kill(os.getpid(), signal.SIGSTOP)


if _EVENT:
    sys.addaudithook(_hook)
'''


def run_env(instrument: Path, **freeze: str) -> dict[str, str]:
    env = {**tool_env(), "PYTHONPATH": str(instrument)}
    return {**env, **{f"FREEZE_{key.upper()}": value for key, value in freeze.items()}}


def dvc(ws: Path, *args: str, env: dict[str, str], preexec=None, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-m", "dvc", *args], cwd=ws, env=env, capture_output=True, text=True, preexec_fn=preexec
    )
    if check and result.returncode != 0:
        raise AssertionError(f"dvc {args} failed:\n{result.stdout}\n{result.stderr}")
    return result


def kill_when_frozen(ws: Path, env: dict[str, str], timeout: float = 300) -> None:
    """Run `dvc repro reorganize` until a process of it stops itself, then kill -9 the whole tree."""
    process = subprocess.Popen(
        [sys.executable, "-m", "dvc", "repro", "reorganize"],
        cwd=ws,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + timeout
    while True:
        tree = [psutil.Process(process.pid), *psutil.Process(process.pid).children(recursive=True)]
        if any(p.status() == psutil.STATUS_STOPPED for p in tree):
            break
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"no stage stopped where asked:\n{process.communicate()[0]}")
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)  # dvc and the stage under it, as the OOM killer or `kill -9` would
    process.communicate()


def debris(ws: Path) -> list[str]:
    """Temporaries an interrupted writer could leave beside outputs."""
    return sorted(
        str(p.relative_to(ws)) for p in ws.rglob(".*.tmp*") if ".dvc" not in p.parts and ".git" not in p.parts
    )


def identity(path: Path) -> tuple:
    """What a user would notice changed about their file: inode, mode, link count, bytes."""
    stat = path.stat()
    return stat.st_ino, stat.st_mode, stat.st_nlink, path.read_bytes()


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> tuple[Path, Path, Path]:
    """(workspace with download.source archive, the user's archive, the instrument folder), nothing run yet."""
    root = tmp_path_factory.mktemp("archive-faults")
    mine = root / "mine" / "competition.zip"
    mine.parent.mkdir()
    build_synthetic_archive(mine, seed=0, train_per_class=12, test_count=6)  # inner train.zip ~290 kB
    mine.chmod(0o640)
    instrument = root / "instrument"
    instrument.mkdir()
    (instrument / "sitecustomize.py").write_text(textwrap.dedent(FREEZER).lstrip())
    ws = make_workspace(root / "ws", {"download": {"source": "archive", "path": str(mine)}})
    return ws, mine, instrument


@pytest.fixture(scope="module")
def expected_index(setup, tmp_path_factory) -> bytes:
    """reorganize's index of the user's archive, made outside DVC."""
    scratch = tmp_path_factory.mktemp("expected")
    reorganize(
        setup[1], scratch / "photos.zip", scratch / "organized.csv", scratch / "classes.json", reorganize_params()
    )
    return (scratch / "organized.csv").read_bytes()


def test_kill_during_download_and_reorganize_then_repro_recovers(setup, expected_index: bytes):
    ws, mine, instrument = setup
    before = identity(mine)

    # download stopped with its copy complete but not yet renamed into place
    kill_when_frozen(ws, run_env(instrument, event="os.rename", path="*/.dogs-vs-cats-*.tmp.zip"))
    assert not (ws / RAW).exists() and not (ws / "data/photos.zip").exists()
    assert [Path(p).parent.as_posix() for p in debris(ws)] == ["data/raw"]

    # reorganize stopped as it opens the photo store's temporary, its inner zips unpacked to the scratch folder beside
    # it (download reruns first and completes)
    kill_when_frozen(ws, run_env(instrument, event="open", path="*/.photos.zip.*.tmp.zip"))
    assert (ws / RAW).read_bytes() == before[-1]
    assert not (ws / "data/photos.zip").exists() and not (ws / "data/organized.csv").exists()
    left = debris(ws)
    assert [Path(p).name.split(".", 4)[-1] for p in left] == ["tmp.zip", "tmp.zip.inner"]
    assert all(Path(p).parent.as_posix() == "data" and Path(p).name.startswith(".photos.zip.") for p in left)
    assert sorted(p.name for p in (ws / left[1]).iterdir()) == ["0.zip", "1.zip"]

    # the next plain run completes, drops the temporaries and gives what an uninterrupted run gives
    rerun = dvc(ws, "repro", "reorganize", env=tool_env())
    assert stages_ran(rerun.stdout) == ["reorganize"]
    assert debris(ws) == []
    assert (ws / "data/organized.csv").read_bytes() == expected_index
    assert len([m for m in store_bytes(ws / "data/photos.zip") if m.startswith("train/cats/")]) == 12
    assert "up to date" in dvc(ws, "status", "reorganize", env=tool_env()).stdout
    assert identity(mine) == before


def test_the_users_archive_is_copied_never_linked_into_dvc(setup):
    ws, mine, _ = setup
    before = identity(mine)
    dvc(ws, "repro", "--force", "--single-item", "download", env=tool_env())  # DVC links its cache to the output
    assert identity(mine) == before  # same inode, mode 0640, one link, same bytes
    raw = ws / RAW
    assert raw.stat().st_ino != before[0] and raw.read_bytes() == before[-1]
    cached = [p for p in (ws / ".dvc/cache/files/md5").rglob("*") if p.is_file() and p.stat().st_ino == before[0]]
    assert cached == []


def _file_size_limit() -> None:
    """Child-side: any file written past 256 kB fails with EFBIG (Python ignores SIGXFSZ), like a full disk."""
    resource.setrlimit(resource.RLIMIT_FSIZE, (256 * 1024, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))


def test_disk_full_during_reorganize(setup, expected_index: bytes):
    ws, _, _ = setup
    dvc(ws, "repro", "reorganize", env=tool_env())  # a finished run first (when this test runs alone)
    result = dvc(
        ws, "repro", "--force", "--single-item", "reorganize", env=tool_env(), preexec=_file_size_limit, check=False
    )
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.startswith("error: reorganize:")]
    assert len(lines) == 1 and "the disk is full or a size limit was hit" in lines[0]
    assert lines[0].endswith("nothing was kept: free some space and run it again")
    assert "Traceback" not in result.stderr
    assert not (ws / "data/photos.zip").exists() and debris(ws) == []
    dvc(ws, "repro", "reorganize", env=tool_env())  # with room again, DVC restores the stage from its cache
    assert (ws / "data/organized.csv").read_bytes() == expected_index
