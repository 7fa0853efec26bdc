"""The class list in lineage records (train's and submit's) and in `lesson2-lineage show`."""

from pathlib import Path

from tasks.lineage.record import class_list_record
from tasks.lineage.show import render
from tasks.photos.class_list import ClassList, submission_layout, write_class_list


def record_of(classes: dict) -> dict:
    """The least of a submission's lineage record that show reads, with its class list."""
    artifact = {"path": "data/submission/submission.csv", "sha256": "ab" * 32, "md5": "cd" * 16}
    return {"artifact": artifact, "stage": {"name": "submit", "cmd": "python -m tasks.submit"}, "classes": classes}


def test_the_record_holds_the_class_list_and_show_prints_it(tmp_path: Path):
    classes = ("cats", "dogs")
    write_class_list(
        tmp_path / "classes.json", ClassList(classes, submission_layout(classes, ["id", "label"], "s.csv"))
    )
    recorded = class_list_record(tmp_path / "classes.json")
    assert recorded == {
        "classes": ["cats", "dogs"],
        "submission": {"header": ["id", "label"], "columns": ["dogs"], "source": "s.csv"},
    }
    lines = render(record_of(recorded), []).splitlines()
    assert "classes (2, target = position): 0 cats, 1 dogs" in lines
    assert "submission header: id,label (label = P(dogs), from s.csv)" in lines


def test_show_prints_n_classes_and_a_header_in_the_samples_order(tmp_path: Path):
    classes = ("beagle", "boxer", "pug")
    layout = submission_layout(classes, ["id", "pug", "beagle", "boxer"], "sample_submission.csv")
    write_class_list(tmp_path / "classes.json", ClassList(classes, layout))
    lines = render(record_of(class_list_record(tmp_path / "classes.json")), []).splitlines()
    assert "classes (3, target = position): 0 beagle, 1 boxer, 2 pug" in lines
    assert (
        "submission header: id,pug,beagle,boxer (one probability column per class, from sample_submission.csv)" in lines
    )
    no_sample = ClassList(classes, submission_layout(classes, None, None))
    write_class_list(tmp_path / "default.json", no_sample)
    lines = render(record_of(class_list_record(tmp_path / "default.json")), []).splitlines()
    assert "submission header: id,beagle,boxer,pug (one probability column per class)" in lines


def test_a_lock_entry_of_a_stage_dvc_yaml_no_longer_has_is_not_taken_for_lineage():
    """features became features@0: DVC leaves the old entry in dvc.lock, with data/features' old hash."""
    from tasks.lineage.record import upstream_chain

    lock = {
        "features": {"cmd": "old", "outs": [{"path": "data/features", "md5": "old.dir"}]},
        "features@0": {"cmd": "python -m tasks.features 0", "outs": [{"path": "data/features/0", "md5": "new.dir"}]},
    }
    declared = {"data/features/0": "features@0"}
    chain = upstream_chain(lock, [{"path": "data/features", "md5": "joined.dir"}], declared)
    assert [stage["name"] for stage in chain] == ["features@0"]
