"""The one reader of dvc.yaml and dvc.lock: templates resolved as DVC resolves them, the lock as DVC loads it, a
stage that reads them while `dvc repro` holds DVC's lock, and one parse of dvc.yaml per lineage record."""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import pytest
import yaml

from tasks.core.errors import StageError
from tasks.core.paths import DVC_FILE, VARS_KEY, load_paths
from tasks.lineage.dvc_project import read_lock, read_params, read_project
from tests.support.workspace import PROJECT, run_tool

PROJECT_PATHS = load_paths(PROJECT / DVC_FILE).model_dump()
# The project's paths (train's record reads them), the ones this pipeline writes moved to where it writes them.
PATHS = PROJECT_PATHS | {
    "raw_archive": "data/raw.txt",
    "model": "models/model.bin",
    "model_lineage": "models/model.lineage.json",
    "model_run": "models/model.run.json",
    "metrics": "metrics",
}
PARAMS = {"make": {"size": 3}, "train": {"epochs": 2, "lr": 0.1}}
MODEL, RECORD, RUN = Path("models/model.bin"), Path("models/model.lineage.json"), Path("models/model.run.json")
# train ends by writing its lineage record as tasks/train.py does: inside the stage, while `dvc repro` holds DVC's lock.
RECORDER = (
    "from pathlib import Path; from tasks.lineage.record import record_lineage as r;"
    " r('train', Path('${paths.model}'), Path('${paths.model_lineage}'), Path('${paths.model_run}'))"
)
# A two-stage pipeline naming every path through `${paths.*}` of its own vars, as the project's dvc.yaml does, in
# each form dvc.yaml allows (plain and with flags).
TEMPLATED = (
    (
        yaml.safe_dump({"vars": [{VARS_KEY: PATHS}]}, sort_keys=False)
        + """
stages:
  make:
    cmd: mkdir -p data && echo made > ${paths.raw_archive}
    params: [make.size]
    outs:
      - ${paths.raw_archive}
  train:
    cmd: >-
      mkdir -p models ${paths.metrics} && cp ${paths.raw_archive} ${paths.model}
      && echo '{"accuracy": 1.0}' > ${paths.metrics}/train.json && echo epoch > ${paths.metrics}/history.csv
      && PYTHON -c "RECORDER"
    deps:
      - ${paths.raw_archive}
    params: [train]
    outs:
      - ${paths.model}
      - ${paths.model_lineage}:
          cache: false
      - ${paths.model_run}:
          cache: false
          type: run-facts
    metrics:
      - ${paths.metrics}/train.json:
          cache: false
    plots:
      - ${paths.metrics}/history.csv:
          cache: false
"""
    )
    .replace("PYTHON", sys.executable)
    .replace("RECORDER", RECORDER)
)


def dvc_repo(root: Path, dvc_yaml: str, params: dict = PARAMS) -> Path:
    """A git + DVC repository at root holding dvc_yaml and params."""
    from dvc.repo import Repo

    root.mkdir(parents=True, exist_ok=True)
    run_tool(["git", "init", "-q"], root)
    Repo.init(root).close()
    (root / "dvc.yaml").write_text(dvc_yaml)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return root


def reproduce(root: Path, monkeypatch: pytest.MonkeyPatch, *targets: str) -> None:
    """`dvc repro` in this process, in root; the stages' commands find the project's tasks package."""
    from dvc.repo import Repo

    monkeypatch.chdir(root)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(PROJECT), os.environ.get("PYTHONPATH", "")]))
    with Repo(".") as repo:
        for target in targets or [None]:
            repo.reproduce(target)


def literal(dvc_yaml: str, values: dict) -> str:
    """dvc_yaml with each `${SECTION.KEY}` written out by plain text replacement: what the resolution must give.

    A list (foreach's, features.shards) is written as a flow list; a foreach's own `${item}` is left for expanded().
    """
    written = lambda value: json.dumps(value) if isinstance(value, list) else value  # noqa: E731
    dvc_yaml = re.sub(r"\$\{(\w+)\.(\w+)\}", lambda m: written(values[m[1]][m[2]]), dvc_yaml)
    assert "${" not in dvc_yaml.replace("${item}", "")
    return dvc_yaml


def expanded(stages: dict) -> dict:
    """Each foreach stage as the stages DVC makes of it, name@item, with `${item}` written out in its `do`."""
    out = {}
    for name, stage in stages.items():
        if "foreach" not in stage:
            out[name] = stage
            continue
        for item in stage["foreach"]:
            out[f"{name}@{item}"] = yaml.safe_load(yaml.safe_dump(stage["do"]).replace("${item}", str(item)))
    return out


def test_templated_stages_read_as_if_the_paths_were_written_out(tmp_path: Path):
    templated = read_project(dvc_repo(tmp_path / "templated", TEMPLATED))
    written_out = read_project(dvc_repo(tmp_path / "literal", literal(TEMPLATED, {VARS_KEY: PATHS})))
    assert templated.stages == written_out.stages
    train = templated.stage("train")
    assert train.deps == ("data/raw.txt",)
    assert train.outs == ("models/model.bin", "models/model.lineage.json", "models/model.run.json")
    assert train.run_facts == ("models/model.run.json",) and templated.run_facts() == {"models/model.run.json"}
    assert train.metrics == ("metrics/train.json",) and train.plots == ("metrics/history.csv",)
    assert train.params == {"params.yaml": ("train",)}
    assert templated.stage("make").params == {"params.yaml": ("make.size",)}
    assert train.cmd.startswith("mkdir -p models metrics && cp data/raw.txt models/model.bin")
    assert templated.producers()["metrics/train.json"] == "train"
    with pytest.raises(StageError, match=r"dvc.yaml has no stage 'predict'"):
        templated.stage("predict")


def test_the_projects_dvc_yaml_resolves_to_the_paths_in_its_vars(tmp_path: Path):
    params = yaml.safe_load((PROJECT / "params.yaml").read_text())
    text = (PROJECT / "dvc.yaml").read_text()
    stages = read_project(dvc_repo(tmp_path / "project", text, params)).stages
    expected = expanded(yaml.safe_load(literal(text, params | {VARS_KEY: PROJECT_PATHS}))["stages"])
    paths = lambda entries: tuple(e if isinstance(e, str) else next(iter(e)) for e in entries or [])  # noqa: E731
    assert list(stages) == list(expected)
    for name, spec in stages.items():
        want = expected[name]
        assert (spec.cmd, spec.deps) == (want["cmd"], paths(want.get("deps"))), name
        assert (spec.outs, spec.metrics, spec.plots) == tuple(paths(want.get(k)) for k in ("outs", "metrics", "plots"))
        assert spec.params == ({"params.yaml": tuple(want["params"])} if "params" in want else {}), name


def test_params_are_read_as_dvc_locks_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    root = dvc_repo(tmp_path / "repo", TEMPLATED)
    monkeypatch.chdir(root)
    project = read_project()
    assert read_params(project.stage("train")) == {"train": PARAMS["train"]}
    assert read_params(project.stage("make")) == {"make.size": 3}
    (root / "params.yaml").write_text(yaml.safe_dump({**PARAMS, "make": {}}))
    with pytest.raises(StageError, match=r"stage make's params are missing from params.yaml: make.size"):
        read_params(project.stage("make"))


def test_the_lock_is_none_before_a_run_and_dvcs_own_after(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    root = dvc_repo(tmp_path / "repo", TEMPLATED)
    assert read_lock(root) is None and read_project(root).lock is None
    reproduce(root, monkeypatch)
    lock = read_lock(root)
    assert lock == yaml.safe_load((root / "dvc.lock").read_text())["stages"] == read_project(root).lock
    assert [out["path"] for out in lock["train"]["outs"]] == [
        "metrics/history.csv",
        "metrics/train.json",
        "models/model.bin",
        "models/model.lineage.json",
        "models/model.run.json",
    ]
    assert read_project(root).cache_dir == root / ".dvc" / "cache" / "files" / "md5"
    # train's command read the project while this process held DVC's lock, and chained make's locked output
    record = json.loads((root / RECORD).read_text())
    make_out = {k: v for k, v in lock["make"]["outs"][0].items() if k != "hash"}
    assert record["upstream"] == [
        {"name": "make", "cmd": lock["make"]["cmd"], "params": {"make.size": 3}, "deps": [], "outs": [make_out]}
    ]
    assert record["stage"]["cmd"] == lock["train"]["cmd"] and record["stage"]["params"] == {"train": PARAMS["train"]}
    assert json.loads((root / RUN).read_text())["record"] == {
        "path": str(RECORD),
        "md5": lock["train"]["outs"][3]["md5"],
    }


def test_dvc_errors_become_one_sentence(tmp_path: Path):
    with pytest.raises(StageError, match=r"DVC cannot read the project at .*: you are not inside of a DVC repository"):
        read_lock(tmp_path)
    broken = dvc_repo(tmp_path / "broken", TEMPLATED.replace("${paths.model}", "${paths.nowhere}"))
    with pytest.raises(StageError, match=re.escape("DVC cannot read the project at") + ".*nowhere"):
        read_project(broken)


def test_a_record_opens_the_repository_once_and_parses_dvc_yaml_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    import dvc.repo
    import dvc.utils.strictyaml

    from tasks.lineage.record import record_lineage

    root = dvc_repo(tmp_path / "repo", TEMPLATED)
    reproduce(root, monkeypatch, "make")
    # train's outputs, as its command leaves them just before it records them
    outputs = {MODEL: "made\n", Path("metrics/train.json"): '{"accuracy": 1.0}', Path("metrics/history.csv"): "epoch\n"}
    for path, text in outputs.items():
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)
    opened, parsed = [], []
    init, load = dvc.repo.Repo.__init__, dvc.utils.strictyaml.load

    def counting_init(self, *args, **kwargs):
        opened.append(args)
        init(self, *args, **kwargs)

    def counting_load(path, *args, **kwargs):
        parsed.append(Path(path).name)
        return load(path, *args, **kwargs)

    monkeypatch.setattr(dvc.repo.Repo, "__init__", counting_init)
    monkeypatch.setattr(dvc.utils.strictyaml, "load", counting_load)
    record = record_lineage("train", MODEL, RECORD, RUN)
    assert len(opened) == 1
    assert parsed.count("dvc.yaml") == 1 and parsed.count("dvc.lock") == 1
    assert json.loads(RECORD.read_text()) == record
    assert [link["name"] for link in record["upstream"]] == ["make"]
    assert [d["path"] for d in record["stage"]["deps"]] == ["data/raw.txt"]
    assert [o["path"] for o in record["stage"]["outs"]] == [str(MODEL), "metrics/train.json", "metrics/history.csv"]
    assert record["metrics"] == {"metrics/train.json": {"accuracy": 1.0}}


def test_no_stage_of_the_project_depends_on_its_run_facts(tmp_path: Path):
    params = yaml.safe_load((PROJECT / "params.yaml").read_text())
    project = read_project(dvc_repo(tmp_path / "project", (PROJECT / "dvc.yaml").read_text(), params))
    paths = PROJECT_PATHS
    assert project.run_facts() == {paths["model_run"], paths["submission_run"], paths["receipt"]}
    for spec in project.stages.values():
        assert not project.run_facts() & set(spec.deps), spec.name  # a rerun would make that stage stale


def test_dvc_lists_no_path_as_a_param(tmp_path: Path):
    """`dvc exp show` and `dvc params diff` list the params DVC gathers: params.yaml's knobs, never a path."""
    from dvc.repo import Repo

    from tasks.core.params import Params

    params = yaml.safe_load((PROJECT / "params.yaml").read_text())
    root = dvc_repo(tmp_path / "project", (PROJECT / DVC_FILE).read_text(), params)
    with Repo(root) as repo:
        shown = repo.params.show()[""]["data"]
    # a `vars` file's keys would be listed as that file's params, as params.yaml's `paths` section was
    listed = {file: sorted(entry["data"]) for file, entry in shown.items()}
    assert listed == {"params.yaml": sorted(Params.model_fields)}
