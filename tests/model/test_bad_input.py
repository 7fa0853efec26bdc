"""Bad input: broken archives, photos that can't be decoded or come in odd formats, and params that make no sense."""

import io
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from tasks.clip import submission_frame
from tasks.competition.submission_format import validate_submission
from tasks.core.errors import StageError
from tasks.core.params import SplitParams, parse_params
from tasks.heads.predictions import undecodable_test_ids
from tasks.photos.class_list import ClassList, submission_layout
from tasks.photos.decode import UndecodablePhoto, load_photo
from tasks.photos.photo_store import PhotoStore, PhotoStoreWriter
from tasks.photos.undecodable import decode_or_blank, read_report, undecodable_ids, undecodable_metrics
from tasks.predict import prediction_frames
from tasks.reorganize import reorganize
from tasks.vgg.feature_store import read_feature_set
from tasks.vgg.preprocess import caffe_preprocess
from tests.support.bad_inputs import competition_zip, encoded, photo_pixels, png_bomb, truncated_jpeg, zip_bytes
from tests.support.params import features_params, reorganize_params
from tests.support.photos import organized_photos, reorganize_with, split_photos
from tests.support.workspace import PROJECT, merged

JPEG = encoded(Image.fromarray(photo_pixels()), "JPEG")
SIZE = 224  # VGG16's side, as in params.yaml


# ---- archives ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p.write_text("PK but not really a zip"), "not a readable zip"),
        (
            lambda p: p.write_bytes(
                competition_zip(p, {"train/cat.1.jpg": JPEG}, {"test/1.jpg": JPEG}).read_bytes()[:200]
            ),
            "not a readable zip",
        ),
        (
            lambda p: p.write_bytes(
                zip_bytes(
                    {
                        "train.zip": zip_bytes({"train/cat.1.jpg": JPEG})[:300],
                        "test.zip": zip_bytes({"test/1.jpg": JPEG}),
                        "sample_submission.csv": b"",
                    }
                )
            ),
            "inner zip .* is corrupt",
        ),
        (
            lambda p: p.write_bytes(zip_bytes({"train.zip": zip_bytes({"train/cat.1.jpg": JPEG})})),
            "reorganize.test is 'test' but the data has no such folder \\(its top holds train/\\): set it to the "
            "folder of unlabelled photos inside the data, or set reorganize.test to '' if there are none",
        ),
        (
            lambda p: competition_zip(p, {"train/cat.1.jpg": JPEG, "../../cat.2.jpg": JPEG}, {"test/1.jpg": JPEG}),
            r"train.zip holds '../../cat.2.jpg', an absolute or '..' path; expected names like train/<file>",
        ),
        (
            lambda p: competition_zip(p, {"train/cat.1.jpg": JPEG}, {"/tmp/1.jpg": JPEG}),
            r"test.zip holds '/tmp/1.jpg', an absolute or '..' path; expected names like test/<file>",
        ),
        (
            lambda p: competition_zip(p, {"train/cat.1.jpg": JPEG}, {"test/1.jpg": JPEG}, {"../evil.csv": b"x"}),
            r"holds '../evil.csv', an absolute or '..' path",
        ),
    ],
    ids=[
        "not-a-zip",
        "truncated-zip",
        "truncated-inner-zip",
        "missing-members",
        "dotdot-member",
        "absolute-member",
        "dotdot-outer-member",
    ],
)
def test_bad_archives_are_refused_by_name_and_nothing_is_written(tmp_path: Path, make, message):
    root = tmp_path / "job"
    root.mkdir()
    archive = root / "comp.zip"
    make(archive)
    with pytest.raises(StageError, match=message):
        reorganize(archive, root / "organized", root / "organized.csv", root / "classes.json", reorganize_params())
    assert sorted(p.name for p in root.iterdir()) == ["comp.zip"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["job"]  # nothing escaped beside or above the output
    assert not Path("/tmp/1.jpg").exists() or Path("/tmp/1.jpg").read_bytes() != JPEG


# ---- photos ------------------------------------------------------------------------------------------


def _bilinear(pixels: np.ndarray) -> np.ndarray:
    return np.asarray(Image.fromarray(pixels).resize((SIZE, SIZE), Image.Resampling.BILINEAR))


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
@pytest.mark.parametrize(
    ("data", "message"),
    [
        (truncated_jpeg(), "image file is truncated"),
        (b"", "cannot identify image file"),
        (b"id,label\n1,0.5\n", "cannot identify image file"),
        (png_bomb(100_000, 100_000), "DecompressionBombError"),  # over twice Pillow's limit: Pillow refuses
        (png_bomb(10_000, 10_000), "declares 10000x10000 pixels"),  # Pillow only warns: we refuse too
    ],
    ids=["truncated-jpeg", "zero-bytes", "text", "bomb-huge", "bomb-large"],
)
def test_undecodable_photos_raise_one_error_kind_with_the_reason(tmp_path: Path, data: bytes, message: str):
    path = tmp_path / "photo.jpg"
    path.write_bytes(data)
    with pytest.raises(UndecodablePhoto, match=message):
        load_photo(path, SIZE)


def test_photos_and_blank_frames_come_at_the_size_asked(tmp_path: Path):
    (tmp_path / "ok.jpg").write_bytes(JPEG)
    (tmp_path / "bad.jpg").write_text("id,label\n")
    photo, why = decode_or_blank(tmp_path / "ok.jpg", 32)
    assert photo.shape == (32, 32, 3) and why is None
    blank, why = decode_or_blank(tmp_path / "bad.jpg", 32)
    assert blank.shape == (32, 32, 3) and "cannot identify image file" in why
    assert np.abs(caffe_preprocess(blank)).max() <= 0.5  # the ImageNet mean colour: near zero once preprocessed


def test_png_and_gif_named_jpg_decode_to_their_pixels(tmp_path: Path):
    pixels = photo_pixels()
    (tmp_path / "png.jpg").write_bytes(encoded(Image.fromarray(pixels), "PNG"))
    np.testing.assert_array_equal(load_photo(tmp_path / "png.jpg", SIZE), _bilinear(pixels))
    palette = Image.fromarray(pixels).convert("P")
    (tmp_path / "gif.jpg").write_bytes(encoded(palette, "GIF"))
    np.testing.assert_array_equal(load_photo(tmp_path / "gif.jpg", SIZE), _bilinear(np.asarray(palette.convert("RGB"))))


def test_grayscale_and_cmyk_become_the_right_rgb(tmp_path: Path):
    gray = photo_pixels()[..., 0]
    (tmp_path / "gray.jpg").write_bytes(encoded(Image.fromarray(gray, "L"), "PNG"))
    decoded = load_photo(tmp_path / "gray.jpg", SIZE)
    np.testing.assert_array_equal(decoded[..., 0], decoded[..., 1])
    np.testing.assert_array_equal(
        decoded[..., 0], np.asarray(Image.fromarray(gray, "L").resize((SIZE, SIZE), Image.Resampling.BILINEAR))
    )
    solid = np.zeros((100, 120, 3), dtype=np.uint8) + np.array([200, 40, 90], dtype=np.uint8)
    (tmp_path / "cmyk.jpg").write_bytes(encoded(Image.fromarray(solid).convert("CMYK"), "JPEG", quality=95))
    assert Image.open(tmp_path / "cmyk.jpg").mode == "CMYK"
    np.testing.assert_allclose(load_photo(tmp_path / "cmyk.jpg", SIZE)[100, 100].astype(int), [200, 40, 90], atol=6)


def test_exif_orientation_is_ignored_as_keras_ignores_it(tmp_path: Path):
    image = Image.fromarray(photo_pixels())
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 clockwise to display"
    (tmp_path / "rotated.jpg").write_bytes(encoded(image, "JPEG", quality=95, exif=exif.tobytes()))
    (tmp_path / "plain.jpg").write_bytes(encoded(image, "JPEG", quality=95))
    assert Image.open(tmp_path / "rotated.jpg").getexif()[0x0112] == 6
    rotated, plain = load_photo(tmp_path / "rotated.jpg", SIZE), load_photo(tmp_path / "plain.jpg", SIZE)
    np.testing.assert_array_equal(rotated, plain)  # the stored pixels, not the displayed ones
    assert rotated[10, 10, 0] > 200 and rotated[10, 10, 1] < 60  # the red block stays top-left: no rotation


# ---- undecodable photos in the features stage, and the test-photo policy down to the submission ---------------


@pytest.fixture(scope="module")
def broken_photos(tmp_path_factory) -> Path:
    """A tiny organized set with two broken train photos, one broken test photo and odd but valid formats."""
    root = tmp_path_factory.mktemp("broken")
    store = PhotoStore(organized_photos(root, per_class=4, test_count=3))  # a zip: reorganize's photo store
    exif = Image.Exif()
    exif[0x0112] = 8
    with store:
        rotated = encoded(Image.open(store.open("test/unknown/3.jpg")), "JPEG", exif=exif.tobytes())
        replacements = {
            "train/cats/cat.1.jpg": truncated_jpeg(),
            "train/dogs/dog.2.jpg": b"not a photo",
            "train/dogs/dog.3.jpg": encoded(Image.open(store.open("train/dogs/dog.3.jpg")), "PNG"),
            "train/cats/cat.4.jpg": encoded(Image.open(store.open("train/cats/cat.4.jpg")).convert("L"), "JPEG"),
            "test/unknown/2.jpg": b"",
            "test/unknown/3.jpg": rotated,
            "train/cats/cat.3.jpg": rotated,
        }
    reorganize_with(root, replacements)
    split_photos(root, SplitParams(seed=0, valid_size=2, sample_train_size=6, sample_valid_size=2))
    return root


def test_broken_train_photos_are_left_out_and_test_ids_kept(broken_photos: Path):
    from tasks.features import features

    root = broken_photos
    counts = features(
        root / "split.csv",
        root / "photos.zip",
        root / "organized",
        root / "features",
        features_params(batch_size=4, max_undecodable=2),
        reorganize_params().max_photo_bytes,
        root / "classes.json",
        0,
    )
    report = read_report(root / "features")
    left_out = report[report["action"] == "left out"]
    assert sorted(left_out["id"]) == ["cat.1", "dog.2"]
    assert set(left_out["subset"]) <= {"train", "valid"}
    assert left_out["reason"].str.contains("truncated|cannot identify").all()
    assert report[report["subset"] == "test"][["id", "action"]].values.tolist() == [["2", "P = 1/2 for every class"]]
    assert undecodable_ids(report, "test") == ["2"]
    metrics = undecodable_metrics(report, ("train", "valid", "test"))
    assert set(metrics) == {"train_undecodable", "valid_undecodable", "test_undecodable"}
    assert metrics["train_undecodable"] + metrics["valid_undecodable"] == 2 and metrics["test_undecodable"] == 1
    for subset in ("train", "valid", "sample_train", "sample_valid"):
        kept = read_feature_set(root / "features", subset)
        assert not {"cat.1", "dog.2"} & set(kept.ids)
        assert len(kept.features) == len(kept.ids)
        assert np.isfinite(kept.features.astype(np.float32)).all()
    assert counts["train"] + counts["valid"] == 8 - 2
    test = read_feature_set(root / "features", "test")
    assert test.ids == ["1", "2", "3"]  # the undecodable test photo keeps its row
    # One decoder for train and test: the same EXIF-rotated file gives the same features in both.
    train_or_valid = {
        i: f
        for s in ("train", "valid")
        for i, f in zip(
            read_feature_set(root / "features", s).ids, read_feature_set(root / "features", s).features, strict=True
        )
    }
    np.testing.assert_array_equal(train_or_valid["cat.3"], test.features[2])


def test_too_many_broken_photos_fail_the_stage_and_keep_nothing(broken_photos: Path):
    from tasks.features import features

    root = broken_photos
    with pytest.raises(
        StageError, match=r"2 train/valid photos can't be decoded, more than features.max_undecodable \(1\)"
    ):
        features(
            root / "split.csv",
            root / "photos.zip",
            root / "organized",
            root / "strict",
            features_params(batch_size=4, max_undecodable=1),
            reorganize_params().max_photo_bytes,
            root / "classes.json",
            0,
        )
    assert not [p for p in root.iterdir() if "strict" in p.name]


def test_an_undecodable_test_photo_gets_half_and_stays_in_the_submission():
    two = ("cats", "dogs")
    p_test = np.array([[0.1, 0.9], [np.nan, np.nan], [0.9, 0.1]])
    _, test = prediction_frames(
        ["cat.1"], np.array([0]), np.array([[0.8, 0.2]]), ["1", "2", "3"], p_test, two, frozenset({"2"})
    )
    assert test["p_dogs"].tolist() == [0.9, 0.5, 0.1] and test["p_cats"].tolist() == [0.1, 0.5, 0.9]
    assert test["undecodable"].tolist() == [False, True, False]
    written = pd.read_csv(io.StringIO(test.to_csv(index=False)), dtype={"id": str})  # as clip and submit read it back
    assert undecodable_test_ids(written) == ["2"]
    dogs_vs_cats = ClassList(("cats", "dogs"), submission_layout(("cats", "dogs"), ["id", "label"], "sample.csv"))
    submission = submission_frame(written, dogs_vs_cats, (0.05, 0.95))
    validate_submission(submission, {"1", "2", "3"}, ("id", "label"))
    assert submission["label"].tolist() == [0.9, 0.5, 0.1]
    with pytest.raises(StageError, match="1 non-finite test predictions"):  # a NaN on a decoded photo still fails
        prediction_frames(
            ["cat.1"],
            np.array([0]),
            np.array([[0.8, 0.2]]),
            ["1", "2"],
            np.array([[np.nan, 1.0], [0.5, 0.5]]),
            two,
            frozenset({"2"}),
        )


# ---- params ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"features": {"weigths": "none"}}, "unknown key features.weigths"),
        ({"download": {"synthetic": {"sed": 1}}}, "unknown key download.synthetic.sed"),
        ({"download": {"synthetic": {"seed": "zero"}}}, "download.synthetic.seed must be int"),
        ({"train": {"phases": [{"lr": "fast", "epochs": 3}]}}, "train.phases[0].lr must be float"),
        ({"train": {"head": "resnet"}}, "train.head is 'resnet'; expected one of: linear, last_layer, dense, conv"),
        ({"split": {"valid_size": 200}}, "split.valid_size is 200 but download.synthetic makes only 200 train photos"),
        ({"split": {"sample_train_size": 190}}, "split.sample_train_size is 190 but only 160 train photos remain"),
        ({"split": {"sample_valid_size": 41}}, "split.sample_valid_size is 41, more than split.valid_size (40)"),
        ({"download": {"synthetic": {"test_count": -5}}}, "download.synthetic.test_count is -5"),
        ({"features": {"max_undecodable": -1}}, "features.max_undecodable is -1"),
        ({"features": {"batch_size": 0}}, "features.batch_size is 0; it must be at least 1"),
        ({"clip": {"bounds": [0.5, 0.5]}}, "clip.bounds is [0.5, 0.5]; it needs 0 <= lo < hi <= 1"),
        ({"clip": {"bounds": [0.05, 1.5]}}, "clip.bounds is [0.05, 1.5]"),
        ({"train": {"dataset": "tiny"}}, "train.dataset is 'tiny'; expected one of: full, sample"),
        (
            {"download": {"source": "s3"}},
            "download.source is 's3'; expected one of: synthetic, archive, folder, kaggle",
        ),
    ],
)
def test_params_are_refused_at_load_naming_the_key(override, message):
    data = merged(yaml.safe_load((PROJECT / "params.yaml").read_text()), override)
    with pytest.raises(StageError) as err:
        parse_params(data)
    assert message in str(err.value)


# ---- photos changed or lost after the manifests were written ---------------------------------------------


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda data: data + b"\0", r"dog.2.jpg in .*photos.zip is not the photo the manifest lists \(md5 "),
        (lambda data: None, r"photos.zip lacks train/dogs/dog.2.jpg, which the manifest lists; run `dvc repro`"),
    ],
    ids=["changed", "missing"],
)
def test_features_refuses_a_photo_that_is_not_the_one_the_manifest_lists(tmp_path: Path, damage, message):
    from tasks.features import features

    organized = organized_photos(tmp_path, per_class=2, test_count=1)
    manifest = split_photos(tmp_path, SplitParams(seed=0, valid_size=2, sample_train_size=1, sample_valid_size=1))
    with zipfile.ZipFile(organized) as store:  # the photo store as the manifest lists it, but for dog.2
        members = {name: store.read(name) for name in store.namelist()}
    with PhotoStoreWriter(organized) as writer:
        for name, data in members.items():
            kept = damage(data) if name == "train/dogs/dog.2.jpg" else data
            if kept is not None:
                writer.add_bytes(name, kept)
    with pytest.raises(StageError, match=message) as refused:
        features(
            manifest,
            organized,
            organized,
            tmp_path / "features",
            features_params(batch_size=2),
            reorganize_params().max_photo_bytes,
            tmp_path / "classes.json",
            0,
        )
    assert "dog.2.jpg" in str(refused.value)
    assert not [p for p in tmp_path.iterdir() if "features" in p.name]
