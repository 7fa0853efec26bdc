"""The folder source under `dvc repro`: DVC hashes the folder and test folder, so a changed photo reruns download."""

import zipfile
from pathlib import Path

from tests.support.workspace import dvc, make_workspace, stages_ran


def _members(archive: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(archive) as opened:
        return {name: opened.read(name) for name in opened.namelist()}


def _files(root: Path) -> dict[str, tuple]:
    return {
        str(p.relative_to(root)): (p.stat().st_mtime_ns, p.stat().st_mode, p.read_bytes()) for p in root.rglob("*.jpg")
    }


def test_a_photo_changed_in_the_folder_or_the_test_folder_reruns_download(tmp_path: Path):
    photos, unlabelled = tmp_path / "photos", tmp_path / "unlabelled"
    for path, data in {
        photos / "cats/1.jpg": b"cat",
        photos / "dogs/2.jpg": b"dog",
        unlabelled / "3.jpg": b"?",
    }.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    override = {"download": {"source": "folder", "path": str(photos), "test_path": str(unlabelled)}}
    workspace = make_workspace(tmp_path / "ws", override)
    raw = workspace / "data/raw/dogs-vs-cats-redux-kernels-edition.zip"

    assert stages_ran(dvc(workspace, "repro", "download").stdout) == ["download"]
    assert _members(raw) == {"cats/1.jpg": b"cat", "dogs/2.jpg": b"dog", "test/3.jpg": b"?"}
    before = _files(photos), _files(unlabelled)
    assert stages_ran(dvc(workspace, "repro", "download").stdout) == []

    (photos / "dogs/2.jpg").write_bytes(b"another dog")
    assert "modified:" in dvc(workspace, "status", "download").stdout
    assert stages_ran(dvc(workspace, "repro", "download").stdout) == ["download"]
    assert _members(raw)["dogs/2.jpg"] == b"another dog"

    (unlabelled / "4.jpg").write_bytes(b"!")
    assert stages_ran(dvc(workspace, "repro", "download").stdout) == ["download"]
    assert _members(raw)["test/4.jpg"] == b"!"

    (photos / "cats/1.jpg").write_bytes(b"cat")  # the same bytes written again: DVC compares md5s, no change
    assert stages_ran(dvc(workspace, "repro", "download").stdout) == []
    after = _files(photos), _files(unlabelled)
    assert after[0]["cats/1.jpg"][1:] == before[0]["cats/1.jpg"][1:] and after[1]["3.jpg"] == before[1]["3.jpg"]
