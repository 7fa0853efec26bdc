"""params.yaml is validated at load time, before any work, with one line per problem naming the key."""

import re
from pathlib import Path

import pydantic
import pytest
import yaml

from tasks.core.errors import StageError, run_stage
from tasks.core.params import PhaseParams, load_params, parse_params
from tests.support.workspace import PROJECT, merged


def project_yaml() -> dict:
    return yaml.safe_load((PROJECT / "params.yaml").read_text())


def refusal_of(data: object) -> str:
    """The message that data is refused with."""
    with pytest.raises(StageError) as err:
        parse_params(data)
    return str(err.value)


def refusal(override: dict) -> str:
    """The message that params.yaml merged with override is refused with."""
    return refusal_of(merged(project_yaml(), override))


def leaf_keys(data: dict, prefix: str = "") -> list[str]:
    """Every dotted key of data whose value is not a mapping, sections included as their own keys."""
    keys = []
    for name, value in data.items():
        key = f"{prefix}{name}"
        keys.append(key)
        if isinstance(value, dict):
            keys += leaf_keys(value, f"{key}.")
    return keys


def without(data: dict, dotted: str) -> dict:
    """A copy of data with the dotted key removed."""
    *sections, last = dotted.split(".")
    copy = merged(data, {})
    node = copy
    for name in sections:
        node = node[name]
    del node[last]
    return copy


def test_project_params_load_into_typed_values():
    params = load_params(PROJECT / "params.yaml")
    assert params.download.source == "synthetic"
    assert params.features.weights == "none"
    assert params.clip.bounds == (0.05, 0.95)
    assert params.train.phases == (PhaseParams(lr=0.1, epochs=3),) and isinstance(params.train.phases[0].lr, float)
    assert params.train.head == "linear" and params.features.layer == "block5_pool"
    assert params.features.image_size == 224 and params.features.max_undecodable == 10
    assert isinstance(params.submit.poll_timeout_s, float)  # written 600, read as a float
    assert parse_params(merged(project_yaml(), {"clip": {"bounds": "auto"}})).clip.bounds == "auto"
    assert parse_params(merged(project_yaml(), {"features": {"image_size": 32}})).features.image_size == 32
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        params.train.head = "conv"  # params never change during a run


def test_a_paths_section_is_refused_pointing_to_dvc_yaml():
    # Where `dvc exp run -S paths.model=...` or a params.yaml from before the move would put it: DVC would list it.
    assert refusal({"paths": {"model": "elsewhere.keras"}}) == (
        "params.yaml: paths is not a params section: where the stages read and write is declared in dvc.yaml's vars "
        "(DVC lists every params.yaml key as a param); remove paths from params.yaml"
    )


@pytest.mark.parametrize("key", leaf_keys(project_yaml()))
def test_every_key_is_required_and_a_missing_one_is_named(key):
    assert f"params.yaml: missing key {key}: add it to params.yaml" in refusal_of(without(project_yaml(), key))


def test_a_missing_key_inside_a_list_item_is_named_with_its_index():
    message = refusal({"train": {"phases": [{"lr": 0.1, "epochs": 2}, {"lr": 0.01}]}})
    assert message == (
        "params.yaml: missing key train.phases[1].epochs: add it to params.yaml (the code holds no defaults)"
    )


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            {"train": {"epocs": 3}},
            "params.yaml: unknown key train.epocs; known keys here: dataset, head, optimizer, phases, batch_size, seed",
        ),
        (
            {"trian": {}},
            "params.yaml: unknown key trian; known keys here: download, reorganize, split, features, train, clip",
        ),
        (
            {"download": {"synthetic": {"sed": 1}}},
            "params.yaml: unknown key download.synthetic.sed; known keys here: seed,",
        ),
        (
            {"train": {"phases": [{"lr": 0.1, "epochs": 2, "momentum": 0.9}]}},
            "params.yaml: unknown key train.phases[0].momentum; known keys here: lr, epochs",
        ),
        ({"features": {"max_quarantined": 10}}, "params.yaml: unknown key features.max_quarantined"),  # the old name
    ],
)
def test_an_unknown_key_is_named_with_the_keys_known_there(override, message):
    assert message in refusal(override)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"train": {"phases": [{"lr": 0.1, "epochs": "three"}]}}, "train.phases[0].epochs must be int, got 'three'"),
        ({"train": {"phases": [{"lr": 0.1, "epochs": True}]}}, "train.phases[0].epochs must be int, got True"),
        ({"train": {"phases": [{"lr": "fast", "epochs": 3}]}}, "train.phases[0].lr must be float, got 'fast'"),
        ({"features": {"image_size": 64.0}}, "features.image_size must be int, got 64.0"),
        ({"features": {"xla": "no"}}, "features.xla must be bool, got 'no'"),
        ({"features": {"weights": 5}}, "features.weights must be str, got 5"),
        ({"train": "fast"}, "train must be a mapping of keys to values, got 'fast'"),
        ({"train": {"phases": {"lr": 0.1}}}, "train.phases must be a list, got {'lr': 0.1}"),
        ({"train": {"optimizer": "adagrad"}}, "train.optimizer is 'adagrad'; expected one of: rmsprop, adam, sgd"),
        (
            {"download": {"source": "ftp"}},
            "download.source is 'ftp'; expected one of: synthetic, archive, folder, kaggle",
        ),
        ({"train": {"head": "resnet"}}, "train.head is 'resnet'; expected one of: linear, last_layer, dense, conv"),
        (
            {"features": {"precision": "float8"}},
            "features.precision is 'float8'; expected one of: float32, mixed_bfloat16, mixed_float16",
        ),
        (
            {"features": {"backend": "tflite"}},
            "features.backend is 'tflite'; expected one of: keras, onnxruntime, openvino",
        ),
        ({"clip": {"bounds": "best"}}, "clip.bounds is 'best'; expected one of: auto"),
        ({"clip": {"bounds": [0.1]}}, "clip.bounds must be a list of 2 values [lo, hi], or auto, got [0.1]"),
        ({"clip": {"bounds": 0.1}}, "clip.bounds must be a list of 2 values [lo, hi], or auto, got 0.1"),
        ({"clip": {"bounds": [0.1, "high"]}}, "clip.bounds[1] must be float, got 'high'"),
    ],
)
def test_a_wrong_type_is_named_with_what_is_expected(override, message):
    assert refusal(override) == f"params.yaml: {message}"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"split": {"seed": -1}}, "split.seed is -1; it must be at least 0"),
        ({"download": {"synthetic": {"test_count": -5}}}, "download.synthetic.test_count is -5; it must be at least 0"),
        ({"features": {"max_undecodable": -1}}, "features.max_undecodable is -1; it must be at least 0"),
        ({"features": {"batch_size": 0}}, "features.batch_size is 0; it must be at least 1"),
        ({"train": {"batch_size": 0}}, "train.batch_size is 0; it must be at least 1"),
        ({"train": {"phases": [{"lr": 0.1, "epochs": 0}]}}, "train.phases[0].epochs is 0; it must be at least 1"),
        (
            {"train": {"phases": [{"lr": 0.1, "epochs": 2}, {"lr": 0, "epochs": 1}]}},
            "train.phases[1].lr is 0; it must be more than 0",
        ),
        ({"submit": {"poll_timeout_s": -1}}, "submit.poll_timeout_s is -1; it must be at least 0"),
    ],
)
def test_a_value_out_of_range_is_named_with_its_range(override, message):
    assert refusal(override) == f"params.yaml: {message}"


SEEDS = (
    {"download": {"synthetic": {"seed": None}}},
    {"split": {"seed": None}},
    {"features": {"seed": None}},
    {"train": {"seed": None}},
)


def with_seed(where: dict, seed: int) -> tuple[dict, str]:
    """where with its one seed set to seed, and that seed's dotted key."""
    ((section, inner),) = where.items()
    if "seed" in inner:
        return {section: {"seed": seed}}, f"{section}.seed"
    ((name, _),) = inner.items()
    return {section: {name: {"seed": seed}}}, f"{section}.{name}.seed"


@pytest.mark.parametrize("where", SEEDS, ids=lambda where: with_seed(where, 0)[1])
def test_every_seed_is_a_32_bit_unsigned_integer(where):
    """NumPy refuses a negative seed and Keras' set_random_seed one of 2**32 or more: both are refused at load."""
    for seed, line in (
        (-1, "is -1; it must be at least 0"),
        (2**32, "is 4294967296; it must be at most 4294967295"),
        (2**64, "is 18446744073709551616; it must be at most 4294967295"),
    ):
        override, key = with_seed(where, seed)
        assert refusal(override) == f"params.yaml: {key} {line}"
    for seed in (0, 2**32 - 1):
        parse_params(merged(project_yaml(), with_seed(where, seed)[0]))


def test_the_seed_bound_is_numpys():
    """The bound is the real one: NumPy's legacy seeding (which Keras' set_random_seed calls; it refuses 2**32 with
    "Seed must be between 0 and 2**32 - 1") takes 2**32 - 1 and no more."""
    import numpy as np

    from tasks.core.params import SEED_LIMIT

    np.random.seed(SEED_LIMIT)
    with pytest.raises(ValueError):
        np.random.seed(SEED_LIMIT + 1)


@pytest.mark.parametrize("written", ["1e-3", "1E-3", "+1e-3", "1.e-3", "1.0e-3", "0.001"])
def test_a_learning_rate_with_an_exponent_is_read_as_a_number_as_dvc_reads_it(tmp_path: Path, written):
    """YAML 1.1 (PyYAML) would read 1e-3 as text; DVC and `dvc exp run -S` read and write it as a number."""
    text = (PROJECT / "params.yaml").read_text()
    (tmp_path / "params.yaml").write_text(text.replace("\n  - lr: 0.1\n", f"\n  - lr: {written}\n"))
    assert load_params(tmp_path / "params.yaml").train.phases[0].lr == 0.001


@pytest.mark.parametrize(
    ("written", "line"),
    [
        ("1e-3x", "train.phases[0].lr must be float, got '1e-3x'"),
        ("e-3", "train.phases[0].lr must be float, got 'e-3'"),
    ],
)
def test_a_learning_rate_that_only_looks_like_an_exponent_is_text(tmp_path: Path, written, line):
    """Only a number in YAML 1.2's float form is read as one; anything else stays text and is refused."""
    text = (PROJECT / "params.yaml").read_text()
    (tmp_path / "params.yaml").write_text(text.replace("\n  - lr: 0.1\n", f"\n  - lr: {written}\n"))
    with pytest.raises(StageError, match=re.escape(line)):
        load_params(tmp_path / "params.yaml")


@pytest.mark.parametrize(
    ("written", "line"),
    [
        (".nan", "train.phases[0].lr is nan; it must be a finite number"),
        (".inf", "train.phases[0].lr is inf; it must be a finite number"),
        ("-.inf", "train.phases[0].lr is -inf; it must be a finite number"),
        (".NaN", "train.phases[0].lr is nan; it must be a finite number"),
        ("-0.1", "train.phases[0].lr is -0.1; it must be more than 0"),
        ("0.0", "train.phases[0].lr is 0.0; it must be more than 0"),
        ("1e-400", "train.phases[0].lr is 0.0; it must be more than 0"),
    ],
)
def test_a_learning_rate_written_in_params_yaml_must_be_a_positive_finite_number(tmp_path: Path, written, line):
    """Written as YAML spells it (.nan, .inf), so the refusal is checked on what PyYAML really hands the model."""
    text = (PROJECT / "params.yaml").read_text()
    assert "\n  - lr: 0.1\n" in text
    (tmp_path / "params.yaml").write_text(text.replace("\n  - lr: 0.1\n", f"\n  - lr: {written}\n"))
    with pytest.raises(StageError) as err:
        load_params(tmp_path / "params.yaml")
    assert str(err.value) == f"params.yaml: {line}"


@pytest.mark.parametrize("written", [".nan", ".inf"])
def test_a_poll_timeout_must_be_finite(tmp_path: Path, written):
    text = (PROJECT / "params.yaml").read_text()
    (tmp_path / "params.yaml").write_text(text.replace("poll_timeout_s: 600", f"poll_timeout_s: {written}"))
    with pytest.raises(StageError, match=r"^params.yaml: submit.poll_timeout_s is (nan|inf); it must be a finite"):
        load_params(tmp_path / "params.yaml")


def test_params_know_only_the_fewest_classes_the_class_list_allows():
    """How many classes the data holds is split's to check (the class list); params refuse only what no data can fit."""
    from tasks.core.params import MIN_CLASSES
    from tasks.photos.class_list import sorted_classes

    assert sorted_classes(["a", "b"], "x") == ("a", "b")
    with pytest.raises(StageError, match=f"a classifier needs at least {MIN_CLASSES}$"):
        sorted_classes(["a"] * MIN_CLASSES, "x")


# Each rule that ties keys together: a file that breaks it, the line it is refused with, and the nearest file
# that keeps it (accepted), so the rule is neither missing nor stricter than it says.
RULES = {
    "archive source needs a path": (
        {"download": {"source": "archive", "path": ""}},
        "download.source is archive but download.path is empty: set it to a local copy of the competition zip",
        {"download": {"source": "archive", "path": "comp.zip"}},
    ),
    # dvc.yaml lists download.path as download's dependency whatever the source, so DVC must find a file.
    "archive source needs a zip, not the placeholder": (
        {"download": {"source": "archive", "path": "data/raw/no-local-archive"}},
        "download.source is archive but download.path is the placeholder data/raw/no-local-archive: "
        "set it to a local copy of the competition zip",
        {"download": {"source": "archive", "path": "/home/me/comp.zip"}},
    ),
    "folder source needs a folder": (
        {"download": {"source": "folder", "path": ""}},
        "download.source is folder but download.path is empty: set it to your folder of photos",
        {"download": {"source": "folder", "path": "/home/me/photos"}},
    ),
    "folder source needs a folder, not the placeholder": (
        {"download": {"source": "folder"}},
        "download.source is folder but download.path is the placeholder data/raw/no-local-archive: "
        "set it to your folder of photos",
        {"download": {"source": "folder", "path": "photos", "test_path": "unlabelled"}},
    ),
    "every source names a file DVC can hash": (
        {"download": {"source": "synthetic", "path": ""}},
        "download.path is empty, but dvc.yaml lists it as download's dependency, which must exist: "
        "set it to data/raw/no-local-archive, the placeholder for sources that read no local data",
        {"download": {"source": "synthetic", "path": "data/raw/no-local-archive"}},
    ),
    "DVC does not expand ~": (
        {"download": {"source": "archive", "path": "~/comp.zip"}},
        "download.path ~/comp.zip starts with ~, which DVC does not expand "
        "(it hashes the path as download's dependency): write the full path",
        {"download": {"source": "archive", "path": "/root/comp.zip"}},
    ),
    # download.test_path is download's dependency too: the placeholder stands for no test folder.
    "no test folder is the placeholder, not empty": (
        {"download": {"source": "folder", "path": "photos", "test_path": ""}},
        "download.test_path is empty, but dvc.yaml lists it as download's dependency, which must exist: "
        "set it to data/raw/no-local-archive, the placeholder for sources that read no local data",
        {"download": {"source": "folder", "path": "photos", "test_path": "data/raw/no-local-archive"}},
    ),
    "DVC does not expand ~ in the test folder": (
        {"download": {"source": "folder", "path": "photos", "test_path": "~/test"}},
        "download.test_path ~/test starts with ~, which DVC does not expand",
        {"download": {"source": "folder", "path": "photos", "test_path": "/root/test"}},
    ),
    "a test folder only with the folder source": (
        {"download": {"source": "archive", "path": "comp.zip", "test_path": "unlabelled"}},
        "download.test_path is unlabelled but only download.source folder reads it (source is archive): "
        "set it back to data/raw/no-local-archive",
        {"download": {"source": "folder", "path": "comp", "test_path": "unlabelled"}},
    ),
    "synthetic classes at least 2": (
        {"download": {"synthetic": {"classes": 1}}},
        "download.synthetic.classes is 1; it must be at least 2",
        {"download": {"synthetic": {"classes": 3}}},
    ),
    "the validation set holds each synthetic class": (
        {"download": {"synthetic": {"classes": 5}}, "split": {"valid_size": 4, "sample_valid_size": 4}},
        "split.valid_size is 4 but download.synthetic.classes is 5: the validation set needs a photo of each class, "
        "so it must be at least 5",
        {"download": {"synthetic": {"classes": 5}}, "split": {"valid_size": 5, "sample_valid_size": 4}},
    ),
    "synthetic photos of every class count": (
        {"download": {"synthetic": {"classes": 3, "train_per_class": 10}}, "split": {"valid_size": 30}},
        "split.valid_size is 30 but download.synthetic makes only 30 train photos; lower it so some remain",
        {
            "download": {"synthetic": {"classes": 3, "train_per_class": 10}},
            "split": {"valid_size": 29, "sample_train_size": 1},
        },
    ),
    "the sample sets hold each synthetic class": (
        {"download": {"synthetic": {"classes": 4}}, "split": {"sample_valid_size": 3}, "train": {"dataset": "sample"}},
        "split.sample_valid_size is 3 but train.dataset is sample, which needs a photo of each of the 4 classes of "
        "download.synthetic there: raise it to at least 4, or set train.dataset to full",
        {"download": {"synthetic": {"classes": 4}}, "split": {"sample_valid_size": 4}, "train": {"dataset": "sample"}},
    ),
    "sample valid set drawn from the valid set": (
        {"split": {"sample_valid_size": 41}},
        "split.sample_valid_size is 41, more than split.valid_size (40) it is drawn from: "
        "lower it, or raise split.valid_size",
        {"split": {"sample_valid_size": 40}},
    ),
    "layer is a VGG16 cut": (
        {"features": {"layer": "fc1"}, "train": {"head": "conv"}},
        "features.layer is 'fc1', not a VGG16 conv or pool layer; choose one of: block1_conv1, block1_conv2,",
        {"features": {"layer": "block1_conv1"}, "train": {"head": "conv"}},
    ),
    "image size halvable five times": (
        {"features": {"image_size": 100}},
        "features.image_size is 100; it must be a multiple of 32 and at least 32 (VGG16 halves it five times)",
        {"features": {"image_size": 96}},
    ),
    "image size at least 32": (
        {"features": {"image_size": 0}},
        "features.image_size is 0; it must be a multiple of 32 and at least 32",
        {"features": {"image_size": 32}},
    ),
    "imagenet weights need 224": (
        {"features": {"weights": "imagenet", "image_size": 64}},
        "features.image_size is 64 but features.weights is 'imagenet', whose dense layers expect 224 "
        "(a 7x7x512 pool5); "
        "set image_size to 224, or weights to none",
        {"features": {"weights": "imagenet", "image_size": 224}},
    ),
    "xla only on keras": (
        {"features": {"backend": "openvino", "xla": True}},
        "features.xla is true but XLA compiles only for the keras backend, not openvino: set features.xla to false, "
        "or features.backend to keras",
        {"features": {"backend": "keras", "xla": True}},
    ),
    "onnxruntime runs float32 only": (
        {"features": {"backend": "onnxruntime", "precision": "mixed_bfloat16"}},
        "features.precision mixed_bfloat16 needs the keras or openvino backend; onnxruntime runs float32 on CPU: "
        "set features.precision to float32, or change features.backend",
        {"features": {"backend": "openvino", "precision": "mixed_bfloat16"}},
    ),
    "at least one phase": (
        {"train": {"phases": []}},
        "train.phases must be a non-empty list, got []: give at least one {lr, epochs}",
        {"train": {"phases": [{"lr": 0.5, "epochs": 1}]}},
    ),
    "clip bounds ordered": (
        {"clip": {"bounds": [0.9, 0.1]}},
        "clip.bounds is [0.9, 0.1]; it needs 0 <= lo < hi <= 1",
        {"clip": {"bounds": [0.0, 1.0]}},
    ),
    "clip bounds distinct": (
        {"clip": {"bounds": [0.5, 0.5]}},
        "clip.bounds is [0.5, 0.5]; it needs 0 <= lo < hi <= 1",
        {"clip": {"bounds": [0.49, 0.5]}},
    ),
    "clip bounds within [0, 1]": (
        {"clip": {"bounds": [0.05, 1.5]}},
        "clip.bounds is [0.05, 1.5]; it needs 0 <= lo < hi <= 1",
        {"clip": {"bounds": [0.05, 1]}},
    ),
    "linear head needs pool5": (
        {"features": {"layer": "block4_pool"}},
        "train.head linear needs features.layer block5_pool (VGG16's dense layers start there), but it is block4_pool; "
        "use train.head conv for another cut, or set features.layer back to block5_pool",
        {"features": {"layer": "block4_pool"}, "train": {"head": "conv"}},
    ),
    "last_layer head needs pool5": (
        {"features": {"layer": "block2_pool"}, "train": {"head": "last_layer"}},
        "train.head last_layer needs features.layer block5_pool",
        {"features": {"layer": "block5_pool"}, "train": {"head": "last_layer"}},
    ),
    "dense head needs pool5": (
        {"features": {"layer": "block5_conv3"}, "train": {"head": "dense"}},
        "train.head dense needs features.layer block5_pool",
        {"features": {"layer": "block5_pool"}, "train": {"head": "dense"}},
    ),
    "reorganize paths stay inside the data": (
        {"reorganize": {"labels": "../labels.csv"}},
        "reorganize.labels is '../labels.csv'; it is a path inside the data as downloaded, like train or imgs/train: "
        "relative, with / between folders and no ..",
        {"reorganize": {"labels": "meta/labels.csv"}},
    ),
    "the test photos are not the train photos": (
        {"reorganize": {"train": "imgs", "test": "imgs/"}},
        "reorganize.test is 'imgs/', the train folder or the whole data; set it to the folder of unlabelled photos, "
        "or to '' if there are none",
        {"reorganize": {"train": "imgs", "test": "imgs/test"}},
    ),
    "the train folder is named": (
        {"reorganize": {"train": ""}},
        "reorganize.train is empty; set it to the folder of labelled photos (. for the data's top)",
        {"reorganize": {"train": ".", "test": ""}},
    ),
    "a CSV is a file": (
        {"reorganize": {"sample_submission": "."}},
        "reorganize.sample_submission is '.'; it names a CSV file inside the data, or '' for none",
        {"reorganize": {"sample_submission": ""}},
    ),
    "a validation set holds each class": (
        {"split": {"valid_size": 0, "sample_valid_size": 0}},
        "split.valid_size is 0; the validation set needs a photo of each class (a classifier has at least 2), "
        "so it must be at least 2",
        {"split": {"valid_size": 2, "sample_valid_size": 0}},
    ),
    "one validation photo is not each class": (
        {"split": {"valid_size": 1, "sample_valid_size": 1}},
        "split.valid_size is 1; the validation set needs a photo of each class (a classifier has at least 2), "
        "so it must be at least 2",
        {"split": {"valid_size": 2, "sample_valid_size": 1}},
    ),
    "the sample train set trained on holds each class": (
        {"split": {"sample_train_size": 0}, "train": {"dataset": "sample"}},
        "split.sample_train_size is 0 but train.dataset is sample, which needs a photo of each class "
        "(a classifier has at least 2) there: raise it to at least 2, or set train.dataset to full",
        {"split": {"sample_train_size": 0}, "train": {"dataset": "full"}},
    ),
    "the sample valid set validated on holds each class": (
        {"split": {"sample_valid_size": 1}, "train": {"dataset": "sample"}},
        "split.sample_valid_size is 1 but train.dataset is sample, which needs a photo of each class "
        "(a classifier has at least 2) there: raise it to at least 2, or set train.dataset to full",
        {"split": {"sample_valid_size": 2}, "train": {"dataset": "sample"}},
    ),
    "synthetic photos leave some to train on": (
        {"split": {"valid_size": 200}},
        "split.valid_size is 200 but download.synthetic makes only 200 train photos; "
        "lower it so some remain to train on",
        {"split": {"valid_size": 199, "sample_train_size": 1}},
    ),
    "synthetic photos fill the sample train set": (
        {"split": {"sample_train_size": 161}},
        "split.sample_train_size is 161 but only 160 train photos remain after split.valid_size: lower one of them",
        {"split": {"sample_train_size": 160}},
    ),
}


@pytest.mark.parametrize(("broken", "message", "kept"), list(RULES.values()), ids=list(RULES))
def test_each_rule_across_keys_is_checked_at_load(broken, message, kept):
    assert refusal(broken).startswith(f"params.yaml: {message}")
    parse_params(merged(project_yaml(), kept))


def test_an_archive_sources_size_is_left_to_split():
    """Only the synthetic source's size is known at load; split checks the others once it has the photos."""
    params = parse_params(
        merged(
            project_yaml(),
            {
                "download": {"source": "archive", "path": "comp.zip"},
                "split": {"valid_size": 5000, "sample_train_size": 5000},
            },
        )
    )
    assert params.split.valid_size == 5000


def test_every_problem_gets_its_own_line():
    message = refusal({"trian": {}, "split": {"valid_size": -1}, "features": {"image_size": 100, "xla": "no"}})
    assert message.splitlines() == [  # in params.yaml's order, unknown keys last
        "params.yaml: split.valid_size is -1; the validation set needs a photo of each class "
        "(a classifier has at least 2), so it must be at least 2",
        "params.yaml: features.xla must be bool, got 'no'",
        "params.yaml: features.image_size is 100; it must be a multiple of 32 and at least 32 "
        "(VGG16 halves it five times)",
        "params.yaml: unknown key trian; known keys here: download, reorganize, split, features, train, clip, submit",
    ]


def test_a_stage_prints_each_problem_as_its_own_error_line(capsys: pytest.CaptureFixture[str]):
    def main() -> None:
        parse_params(merged(project_yaml(), {"split": {"seed": -1}, "train": {"batch_size": 0}}))

    with pytest.raises(SystemExit) as exited:
        run_stage("split", main)
    assert exited.value.code == 2
    assert capsys.readouterr().err.splitlines() == [
        "error: split: params.yaml: split.seed is -1; it must be at least 0",
        "error: split: params.yaml: train.batch_size is 0; it must be at least 1",
    ]


@pytest.mark.parametrize("content", [None, [], "just text"])
def test_a_file_that_is_not_a_mapping_is_refused(content):
    assert refusal_of(content).startswith("params.yaml: the file must be a mapping of keys to values, got ")


def test_missing_and_malformed_files_are_explained(tmp_path: Path):
    with pytest.raises(StageError, match="not found"):
        load_params(tmp_path / "params.yaml")
    (tmp_path / "params.yaml").write_text("train: [unclosed\n")
    with pytest.raises(StageError, match="not valid YAML"):
        load_params(tmp_path / "params.yaml")
