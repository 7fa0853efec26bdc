"""docs/lesson2.md's recipe for comparing heads: queue each with its settings, run them all, show what changed."""

import json
from pathlib import Path

import yaml

from tests.support.workspace import dvc, make_workspace

# Two heads, each with the settings it needs; the second names no optimizer, so it must get the committed one.
QUEUED = {
    "last-layer": ["train.head=last_layer", "train.optimizer=adam", "train.phases=[{lr: 0.001, epochs: 2}]"],
    "conv": ["train.head=conv", "train.phases=[{lr: 0.01, epochs: 1}]"],
}
OWN_TRAIN = {
    "last-layer": {"head": "last_layer", "optimizer": "adam", "phases": [{"lr": 0.001, "epochs": 2}]},
    "conv": {"head": "conv", "phases": [{"lr": 0.01, "epochs": 1}]},
}


def experiments(shown: list[dict]) -> dict[str, dict]:
    """Each experiment's params and metrics, by name, from `dvc exp show --json`."""
    return {rev["name"]: rev["data"] for base in shown for exp in base.get("experiments") or [] for rev in exp["revs"]}


def test_queued_experiments_each_run_with_their_own_params_and_show_side_by_side(tmp_path: Path):
    # 32x32 photos: the recipe is the same at any size, and the conv pass costs little.
    workspace = make_workspace(tmp_path / "ws", {"features": {"image_size": 32}})
    committed = (workspace / "params.yaml").read_text()
    for name, overrides in QUEUED.items():
        dvc(workspace, "exp", "run", "--queue", "-n", name, *[arg for o in overrides for arg in ("-S", o)])
    # Queueing leaves the workspace as committed: the next -S has nothing to inherit.
    assert (workspace / "params.yaml").read_text() == committed

    dvc(workspace, "exp", "run", "--run-all")

    shown = json.loads(dvc(workspace, "exp", "show", "--only-changed", "--json").stdout)
    ran = experiments(shown)
    assert set(ran) == set(QUEUED)
    base = yaml.safe_load(committed)
    for name, own in OWN_TRAIN.items():
        # Exactly the committed params with this experiment's own -S: nothing from the one queued before it.
        assert ran[name]["params"]["params.yaml"]["data"] == {**base, "train": {**base["train"], **own}}, name
        assert 0.0 <= ran[name]["metrics"]["metrics/train.json"]["data"]["val_accuracy"] <= 1.0, name

    # The table lists the knobs that differ between the runs and leaves out those that don't.
    table = dvc(workspace, "exp", "show", "--only-changed", "--md").stdout
    header = table.splitlines()[0]
    assert "train.head" in header and "train.phases" in header and "val_accuracy" in header
    assert "train.batch_size" not in header and "features.image_size" not in header
    assert "[last-layer]" in table and "[conv]" in table
