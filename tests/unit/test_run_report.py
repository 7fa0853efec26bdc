"""What a run publishes: metric rows from metrics/*.json, a lineage summary built from dvc.lock and the params, its
pictures and curves, and where its submission is."""

import base64
import io
import json
from pathlib import Path

import yaml

from flows.run_params import validated_params
from flows.run_report import (
    PICTURE_MAX_SIDE,
    lineage_markdown,
    metric_rows,
    pictures_markdown,
    submission_markdown,
    weights_identity,
)
from tasks.core.paths import DVC_FILE, load_paths
from tests.support.workspace import PROJECT, project_params


def test_metric_rows_name_each_scalar_by_file_and_key(tmp_path: Path):
    (tmp_path / "train.json").write_text(json.dumps({"val_accuracy": 0.9, "history": [1, 2]}))
    (tmp_path / "clip.json").write_text(json.dumps({"lo": 0.05}))
    for shard in (0, 1):  # each features@<shard> stage's own metrics
        (tmp_path / "features" / str(shard)).mkdir(parents=True)
        (tmp_path / "features" / str(shard) / "undecodable.json").write_text(json.dumps({"test_undecodable": shard}))
    assert metric_rows(tmp_path) == [
        {"metric": "clip.lo", "value": 0.05},
        {"metric": "features/0/undecodable.test_undecodable", "value": 0},
        {"metric": "features/1/undecodable.test_undecodable", "value": 1},
        {"metric": "train.val_accuracy", "value": 0.9},
    ]


def test_weights_are_named_as_the_model_lineage_record_names_them(tmp_path: Path):
    assert weights_identity(tmp_path, "models/head.lineage.json") == "unknown: no model lineage record"
    record = tmp_path / "models" / "head.lineage.json"
    record.parent.mkdir()
    vgg16 = {"weights": "vgg.h5", "identity": "file vgg.h5", "sha256": "ab12"}
    record.write_text(json.dumps({"features": {"vgg16": vgg16}}))
    assert weights_identity(tmp_path, "models/head.lineage.json") == "file vgg.h5, sha256 ab12"


def test_lineage_names_the_locked_hashes_commit_experiment_and_overrides(tmp_path: Path):
    from dvc.repo import Repo

    Repo.init(tmp_path, no_scm=True).close()  # dvc.lock is read through DVC, which needs a repository around it
    merged, _ = validated_params(project_params(), {"train.batch_size": 4})
    paths = load_paths(PROJECT / DVC_FILE)
    out = {"path": paths.raw_archive, "hash": "md5", "md5": "abc123", "size": 3}
    shard = {"path": f"{paths.features}/1", "hash": "md5", "md5": "f1.dir", "size": 3}
    stages = {
        "download": {"cmd": "python -m tasks.download", "outs": [out]},
        "features@1": {"cmd": "python -m tasks.features 1", "outs": [shard]},
    }
    lock = {"schema": "2.0", "stages": stages}
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump(lock))
    text = lineage_markdown(
        run_name="brave-lemur",
        workspace=tmp_path,
        paths=paths,
        merged=merged,
        overrides={"train.batch_size": 4},
        outcomes={"download": "up to date", "reorganize": "restored", "split": "ran"},
        commit="c0ffee",
        changed=["tasks/train.py"],
        experiment="brave-lemur",
        experiment_commit="e4e4",
        metrics=[{"metric": "train.val_accuracy", "value": 0.5}],
    )
    assert f"`{paths.raw_archive}` md5 `abc123`" in text
    assert f"`{paths.model}` md5 `not in dvc.lock`" in text
    assert f"| features | `{paths.features}/1` md5 `f1.dir` |" in text  # each shard's folder
    assert "`c0ffee` plus uncommitted changes to tasks/train.py" in text
    assert "`brave-lemur` at `e4e4`" in text and "| download | ⚪ up to date |" in text
    assert "| reorganize | 🔵 restored |" in text and "| split | 🟢 ran |" in text
    assert (
        "`train.batch_size=4`" in text and "batch_size: 4" in text and "raw_archive" not in text.split("## Params")[1]
    )


def test_pictures_are_embedded_scaled_and_curves_are_a_table(tmp_path: Path):
    from PIL import Image

    (tmp_path / "views").mkdir()
    noise = Image.effect_noise((2400, 1200), 90).convert("RGBA")  # a photo grid: JPEG beats PNG by far
    noise.save(tmp_path / "views" / "confident_correct.png")
    Image.new("RGBA", (40, 40), (0, 0, 0, 0)).save(tmp_path / "first_layer_filters.png")  # flat: PNG stays smaller
    (tmp_path / "train_history.csv").write_text("epoch,accuracy,learning_rate\n1,0.481249988,0.10000000149\n")
    text = pictures_markdown("brave-lemur", tmp_path, "metrics")
    assert "| epoch | accuracy | learning_rate |" in text and "| 1 | 0.4812 | 0.1 |" in text
    assert "## confident correct (`metrics/views/confident_correct.png`)" in text
    assert "![confident correct](data:image/jpeg;base64," in text
    assert "![first layer filters](data:image/png;base64," in text
    uri = text.split("![confident correct](")[1].split(")")[0]
    with Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))) as shown:
        assert shown.size == (PICTURE_MAX_SIDE, PICTURE_MAX_SIDE // 2)  # aspect ratio kept


def test_the_submission_is_described_where_it_is_and_linked_only_when_a_link_opens(tmp_path: Path):
    csv_file = tmp_path / "submission.csv"
    csv_file.write_text("id,label\n" + "".join(f"{i},0.5\n" for i in range(1, 9)))
    text = submission_markdown(
        label="data/submission/submission.csv", host="worker", location=csv_file, md5="ab12", link=None, note="here"
    )
    assert "](" not in text and "| rows | 8 |" in text and f"`worker:{csv_file}`" in text
    assert "id,label\n1,0.5\n2,0.5\n3,0.5\n4,0.5\n5,0.5\n```" in text
    linked = submission_markdown(
        label="s.csv", host="w", location=csv_file, md5="ab12", link="https://s3/x?sig", note="until Monday"
    )
    assert "[Download s.csv](https://s3/x?sig) (until Monday)" in linked
