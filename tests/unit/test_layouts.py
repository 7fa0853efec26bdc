"""reorganize on any layout: class folders (at the top, under train, in inner zips), a labels CSV (ids as stems or file
names), Dogs vs. Cats' names; test ids as the sample writes them; each refusal in one line, with nothing written."""

import io
import zipfile
from pathlib import Path

import pytest

from tasks.core.errors import StageError
from tasks.photos.class_list import read_class_list
from tasks.photos.manifest import read_manifest
from tasks.reorganize import reorganize
from tests.support.bad_inputs import patched_headers, zip_bytes
from tests.support.params import reorganize_params
from tests.support.photos import store_bytes

REAL_ARCHIVE = Path("/work/shared/data/real-sample/dogs-vs-cats-redux-kernels-edition.zip")
# reorganize params for a user's folder packed as-is: labelled photos at the top, no sample submission
TOP = {"train": ".", "test": "test", "labels": "", "sample_submission": ""}


def organize(tmp_path: Path, files: dict[str, bytes], **params):
    """Reorganize a zip of files (name -> bytes) with params over params.yaml's; (result, manifest, class list)."""
    archive = tmp_path / "data.zip"
    archive.write_bytes(zip_bytes(files))
    done = reorganize(
        archive,
        tmp_path / "photos.zip",
        tmp_path / "organized.csv",
        tmp_path / "classes.json",
        reorganize_params(**params),
    )
    return done, read_manifest(tmp_path / "organized.csv"), read_class_list(tmp_path / "classes.json")


def refused(tmp_path: Path, files: dict[str, bytes], **params) -> str:
    """The one line reorganize refuses files with; nothing is written beside the archive."""
    with pytest.raises(StageError) as caught:
        organize(tmp_path, files, **params)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.zip"]
    line = str(caught.value)
    assert "\n" not in line
    return line


def rows(manifest, subset: str) -> list[tuple[str, str, str]]:
    return [(e.class_name, e.id, e.path) for e in manifest if e.subset == subset]


# ---- layouts --------------------------------------------------------------------------------------------


def test_class_folders_at_the_top_of_a_users_folder(tmp_path: Path):
    files = {
        "cats/a.jpg": b"a",
        "cats/b.JPEG": b"b",
        "dogs/c.png": b"c",
        "dogs/d.webp": b"d",
        "test/x.jpg": b"x",
        "test/y.TIF": b"y",
        "README.md": b"my photos",
        "cats/notes.txt": b"",
    }
    done, manifest, class_list = organize(tmp_path, files, **TOP)
    assert class_list.classes == ("cats", "dogs")
    assert class_list.submission.header == ("id", "label") and class_list.submission.source is None
    assert rows(manifest, "train") == [  # a class folder's photo has the id <class>/<file name without extension>
        ("cats", "cats/a", "train/cats/a.jpg"),
        ("cats", "cats/b", "train/cats/b.JPEG"),
        ("dogs", "dogs/c", "train/dogs/c.png"),
        ("dogs", "dogs/d", "train/dogs/d.webp"),
    ]
    assert rows(manifest, "test") == [("unknown", "x", "test/unknown/x.jpg"), ("unknown", "y", "test/unknown/y.TIF")]
    stored = store_bytes(tmp_path / "photos.zip")
    assert stored["train/dogs/d.webp"] == b"d"
    assert list(stored) == [e.path for e in manifest]  # the photos alone, in manifest order: no sample, no README
    assert done.line() == (
        "reorganize: train/cats 2, train/dogs 2, test/unknown 2, skipped 2 files that are not photos (README.md, "
        "cats/notes.txt), no sample submission: the submission takes the default layout (id, then the probabilities)"
    )


def test_class_folders_under_train_three_classes_and_a_sample_in_class_order(tmp_path: Path):
    files = {
        **{f"train/{c}/{c}{i}.jpg": c.encode() for c in ("horse", "cow", "pig") for i in (1, 2)},
        "test/1.jpg": b"1",
        "test/2.jpg": b"2",
        "extra/3.jpg": b"3",
        "sample_submission.csv": b"id,pig,horse,cow\n1,0.3,0.3,0.4\n2,0.3,0.3,0.4\n",
    }
    done, manifest, class_list = organize(tmp_path, files)
    assert class_list.classes == ("cow", "horse", "pig")
    assert class_list.submission.columns == ("pig", "horse", "cow")  # the sample's order, kept for the submission
    assert [e.class_name for e in manifest if e.subset == "train"] == ["cow"] * 2 + ["horse"] * 2 + ["pig"] * 2
    assert [e.id for e in manifest if e.subset == "test"] == ["1", "2"]
    assert store_bytes(tmp_path / "photos.zip")["sample_submission.csv"] == files["sample_submission.csv"]
    assert done.outside == [Path("extra/3.jpg")] and "skipped 1 photos outside reorganize.train" in done.line()


def test_class_folders_may_number_their_photos_alike(tmp_path: Path):
    """A camera or a dataset names every class's photos IMG_0001.jpg, ...: two photos, not one in two classes."""
    files = {f"{c}/IMG_{i:04d}.jpg": f"{c}{i}".encode() for c in ("wasps", "bees") for i in (10, 9)}
    files |= {"bees/more/IMG_0011.JPG": b"bees11", "test/IMG_0001.jpg": b"t"}
    done, manifest, class_list = organize(tmp_path, files, **TOP)
    assert class_list.classes == ("bees", "wasps")
    assert rows(manifest, "train") == [
        ("bees", "bees/IMG_0009", "train/bees/IMG_0009.jpg"),
        ("bees", "bees/IMG_0010", "train/bees/IMG_0010.jpg"),
        ("bees", "bees/IMG_0011", "train/bees/IMG_0011.JPG"),
        ("wasps", "wasps/IMG_0009", "train/wasps/IMG_0009.jpg"),
        ("wasps", "wasps/IMG_0010", "train/wasps/IMG_0010.jpg"),
    ]
    assert rows(manifest, "test") == [("unknown", "IMG_0001", "test/unknown/IMG_0001.jpg")]
    assert store_bytes(tmp_path / "photos.zip")["train/wasps/IMG_0009.jpg"] == b"wasps9"
    assert done.counts == {"train/bees": 3, "train/wasps": 2, "test/unknown": 1}


def test_inner_zips_with_and_without_their_own_top_folder(tmp_path: Path):
    files = {
        "train.zip": zip_bytes({"cats/a.jpg": b"a", "dogs/b.jpg": b"b", "dogs/": b""}),  # no train/ folder inside
        "test.zip": zip_bytes({"test/": b"", "test/7.jpg": b"7"}),  # Dogs vs. Cats' way: test/ inside test.zip
        "unused.zip": zip_bytes({"x.jpg": b"x"}),  # outside train and test: never opened, counted
        "sample_submission.csv": b"id,label\n7,0.5\n",
    }
    done, manifest, _ = organize(tmp_path, files)
    assert rows(manifest, "train") == [("cats", "cats/a", "train/cats/a.jpg"), ("dogs", "dogs/b", "train/dogs/b.jpg")]
    assert rows(manifest, "test") == [("unknown", "7", "test/unknown/7.jpg")]
    assert done.not_photos == [Path("unused.zip")]


def test_labels_csv_with_stems_and_a_sample_of_breeds(tmp_path: Path):
    """Dog Breed Identification's layout: labels.csv (id,breed), train/<id>.jpg, sample ids without .jpg."""
    files = {
        "labels.csv": b"id,breed\n0a1,beagle\n0b2,pug\n0c3,beagle\n0d4,boxer\n",
        **{f"train/{i}.jpg": i.encode() for i in ("0a1", "0b2", "0c3", "0d4")},
        "test/f1.jpg": b"f1",
        "test/e2.jpg": b"e2",
        "sample_submission.csv": b"id,beagle,boxer,pug\nf1,0.3,0.3,0.4\ne2,0.3,0.3,0.4\n",
    }
    done, manifest, class_list = organize(tmp_path, files, labels="labels.csv")
    assert class_list.classes == ("beagle", "boxer", "pug")
    assert rows(manifest, "train") == [
        ("beagle", "0a1", "train/beagle/0a1.jpg"),
        ("beagle", "0c3", "train/beagle/0c3.jpg"),
        ("boxer", "0d4", "train/boxer/0d4.jpg"),
        ("pug", "0b2", "train/pug/0b2.jpg"),
    ]
    assert [e.id for e in manifest if e.subset == "test"] == ["e2", "f1"]  # natural order
    assert "skipped" not in done.line()  # the labels and sample CSVs are read, not skipped


def test_labels_csv_with_file_names_no_header_and_no_test(tmp_path: Path):
    files = {
        "images/x.jpg": b"x",
        "images/y.png": b"y",
        "images/z.jpg": b"z",
        "meta/labels.csv": "\ufeffx.jpg,red\ny.png,blue\nz.jpg,red\n".encode(),  # Excel's byte-order mark
    }
    _, manifest, class_list = organize(
        tmp_path, files, train="images", test="", labels="meta/labels.csv", sample_submission=""
    )
    assert class_list.classes == ("blue", "red")
    assert rows(manifest, "train") == [
        ("blue", "y", "train/blue/y.png"),
        ("red", "x", "train/red/x.jpg"),
        ("red", "z", "train/red/z.jpg"),
    ]
    assert rows(manifest, "test") == [] and not [
        m for m in store_bytes(tmp_path / "photos.zip") if m.startswith("test")
    ]


def test_sample_ids_with_the_extension_make_the_test_ids_file_names(tmp_path: Path):
    """State Farm's layout: imgs/train/c0..c2, imgs/test/img_1.jpg, a sample `img,c0,c1,c2` whose ids carry .jpg."""
    files = {
        **{f"imgs/train/c{c}/img_{10 * c + i}.jpg": f"c{c}".encode() for c in range(3) for i in (1, 2)},
        "imgs/test/img_1.jpg": b"1",
        "imgs/test/img_100.jpg": b"2",
        "imgs/test/img_20.jpg": b"3",
        "driver_imgs_list.csv": b"subject,classname,img\n",
        "sample_submission.csv": b"img,c0,c1,c2\n"
        + b"".join(f"img_{i}.jpg,0.3,0.3,0.4\n".encode() for i in (1, 20, 100)),
    }
    done, manifest, class_list = organize(tmp_path, files, train="imgs/train", test="imgs/test")
    assert class_list.classes == ("c0", "c1", "c2") and class_list.submission.id_column == "img"
    assert [e.id for e in manifest if e.subset == "test"] == ["img_1.jpg", "img_20.jpg", "img_100.jpg"]
    assert [e.id for e in manifest if e.subset == "train"][:2] == ["c0/img_1", "c0/img_2"]  # no extension
    assert done.not_photos == [Path("driver_imgs_list.csv")]


def test_many_classes_are_summed_up_in_the_output_line(tmp_path: Path):
    files = {f"train/c{c}/{c}_{i}.jpg": f"c{c}".encode() for c in range(1, 12) for i in range(1, 2 + (c == 5))}
    done, _, class_list = organize(tmp_path, files, test="", sample_submission="")
    assert class_list.classes[:3] == ("c1", "c2", "c3") and len(class_list.classes) == 11
    assert done.line() == (
        "reorganize: train 12 photos in 11 classes (fewest train/c1 1, most train/c5 2), no sample submission: "
        "the submission takes the default layout (id, then the probabilities)"
    )


def test_dogs_vs_cats_names_under_train_as_a_plain_folder(tmp_path: Path):
    files = {"train/cat.2.jpg": b"c", "train/cat.10.jpg": b"c", "train/dog.1.jpg": b"d", "test/1.jpg": b"1"}
    _, manifest, class_list = organize(tmp_path, files, sample_submission="")
    assert class_list.classes == ("cats", "dogs")
    assert [e.id for e in manifest] == ["cat.2", "cat.10", "dog.1", "1"]


# ---- refusals: one line each, nothing written --------------------------------------------------------------

TWO = {"train/cats/a.jpg": b"a", "train/dogs/b.jpg": b"b", "test/1.jpg": b"1"}

REFUSALS = {
    "empty-class-folder": (
        {**TWO, "train/horses/": b""},
        {},
        "class folder train/horses holds no photos: add photos of horses, or remove the folder",
    ),
    "class-folder-of-other-files": (
        {**TWO, "train/horses/notes.txt": b""},
        {},
        "class folder train/horses holds no photos",
    ),
    "one-photo-two-classes": (  # the same bytes under any name: one photo given two classes
        {**TWO, "train/dogs/c/z.png": b"a", "train/dogs/a.jpg": b"not a"},
        {},
        "train/cats/a.jpg and train/dogs/c/z.png are the same photo (md5 0cc175b9c0f1b6a831c399e269772661) in two "
        "classes, cats and dogs; a photo has one class: remove one of them",
    ),
    "one-id-twice-in-a-class": (  # both would be copied to train/cats/a.jpg
        {**TWO, "train/cats/sub/a.jpg": b"a2"},
        {},
        "train holds photo id cats/a twice (train/cats/a.jpg and train/cats/sub/a.jpg); an id is the file name "
        "without extension (after the class folder, if any) and names one photo: rename one",
    ),
    "one-id-twice-by-extension": (
        {**TWO, "train/cats/a.png": b"a2"},
        {},
        "train holds photo id cats/a twice (train/cats/a.jpg and train/cats/a.png)",
    ),
    "labels-one-id-two-files": (
        {"train/a.jpg": b"1", "train/a.png": b"2", "labels.csv": b"id,class\na.jpg,x\na.png,y\n", "test/1.jpg": b""},
        {"labels": "labels.csv"},
        "train holds photo id a twice (train/a.jpg and train/a.png)",
    ),
    "labels-two-classes": (
        {
            "train/a.jpg": b"",
            "train/b.jpg": b"",
            "labels.csv": b"id,class\na,x\nb,y\na.jpg,y\na,y\n",
            "test/1.jpg": b"",
        },
        {"labels": "labels.csv"},
        "labels.csv gives photo a two classes, x and y; a photo has one class: remove one row",
    ),
    "labels-row-without-photo": (
        {"train/a.jpg": b"", "train/b.jpg": b"", "labels.csv": b"id,class\na,x\nb,y\nc,y\n", "test/1.jpg": b""},
        {"labels": "labels.csv"},
        "labels.csv names 1 photos that are not in the train folder train (reorganize.train) (e.g. c): remove",
    ),
    "photo-without-labels-row": (
        {"train/a.jpg": b"", "train/b.jpg": b"", "labels.csv": b"id,class\na,x\n", "test/1.jpg": b""},
        {"labels": "labels.csv"},
        "1 train photos in train (reorganize.train) have no row in labels.csv (e.g. b.jpg): add a row",
    ),
    "labels-file-missing": (
        {"train/a.jpg": b"", "test/1.jpg": b""},
        {"labels": "labels.csv"},
        "reorganize.labels is 'labels.csv' but the data has no such file",
    ),
    "labels-and-class-folders": (
        {**TWO, "labels.csv": b"id,class\na,cats\nb,dogs\n"},
        {"labels": "labels.csv"},
        "reorganize.labels names labels.csv, but the train photos sit in class folders (cats, dogs)",
    ),
    "unsafe-class-name": (
        {**TWO, "train/a:b/c.jpg": b"c"},
        {},
        "class 'a:b' in the train folder train holds a character no folder name may",
    ),
    "class-named-unknown": (
        {**TWO, "train/Unknown/c.jpg": b"c"},
        {},
        "class 'Unknown' in the train folder train is 'unknown', the folder test photos sit in",
    ),
    "unsafe-class-in-labels": (
        {"train/a.jpg": b"", "train/b.jpg": b"", "labels.csv": b"id,class\na,x\nb,.hidden\n", "test/1.jpg": b""},
        {"labels": "labels.csv"},
        "class '.hidden' in the train folder train starts with a dot",
    ),
    "one-class": ({"train/cats/a.jpg": b"a", "test/1.jpg": b"1"}, {}, "holds 1 class ['cats']; a classifier needs"),
    "direct-and-subfolders": (
        {**TWO, "train/c.jpg": b"c"},
        {},
        "the train folder train (reorganize.train) holds photos both directly (1, e.g. train/c.jpg) and in "
        "subfolders (2, e.g. train/cats/a.jpg, train/dogs/b.jpg)",
    ),
    "direct-photos-without-names-or-labels": (
        {"train/a.jpg": b"", "test/1.jpg": b""},
        {},
        "train photo 'a.jpg' sits directly in the train folder train (reorganize.train), not named <word>.<n>.<ext>",
    ),
    "train-folder-missing": (
        {"photos/cats/a.jpg": b"", "photos/dogs/b.jpg": b"", "test/1.jpg": b""},
        {},
        "reorganize.train is 'train' but the data has no such folder (its top holds photos/, test/): set it to the "
        "folder of labelled photos inside the data (. for the top)",
    ),
    "train-without-photos": (
        {"train/readme.txt": b"", "test/1.jpg": b""},
        {},
        "the train folder train (reorganize.train) holds no photos (1 other files skipped)",
    ),
    "test-folder-missing": (
        {"train/cats/a.jpg": b"", "train/dogs/b.jpg": b""},
        {},
        "reorganize.test is 'test' but the data has no such folder (its top holds train/): set it to the folder of "
        "unlabelled photos inside the data, or set reorganize.test to '' if there are none",
    ),
    "test-id-twice": (
        {**TWO, "test/a/1.jpg": b"1"},
        {},
        "the test folder holds test id 1 twice (test/1.jpg and test/a/1.jpg); the submission needs unique ids",
    ),
    "sample-header-disagrees": (
        {**TWO, "sample_submission.csv": b"id,cats,horses\n1,0.5,0.5\n"},
        {},
        "sample_submission.csv's header (id then 2 columns) disagrees with the 2 classes found: it names 1 classes "
        "the photos lack (horses); it lacks 1 classes the photos hold (dogs)",
    ),
    "sample-of-class-names": (  # Plant Seedlings Classification's sample: `file,species`, one class name a row
        {**TWO, "sample_submission.csv": b"file,species\n1.jpg,cats\n"},
        {},
        "sample_submission.csv has the header file,species and its rows hold class names ('cats'), not "
        "probabilities; this pipeline writes a probability for each of the 2 classes",
    ),
    "sample-header-of-class-names": (
        {**TWO, "train/pigs/c.jpg": b"c", "sample_submission.csv": b"file,species\n"},
        {"test": ""},
        "sample_submission.csv has the header file,species: one column of class names, it seems, but this pipeline "
        "writes a probability for each of the 3 classes",
    ),
    "sample-ids-disagree": (
        {**TWO, "test/2.jpg": b"2", "sample_submission.csv": b"id,label\n1,0.5\n3,0.5\n3,0.5\n"},
        {},
        "sample_submission.csv (reorganize.sample_submission) lists 3 ids and the test folder test holds 2 photos: "
        "1 of its ids have no photo (e.g. 3); 1 photos have no row (e.g. 2); it lists 3 twice; the sample must list "
        "exactly the test photos",
    ),
    "csv-unsafe-id": (
        {**TWO, "test/a,b.jpg": b""},
        {},
        "photo 'a,b.jpg' has the id 'a,b', which holds a comma, a double quote or a control character",
    ),
    "same-path-twice": (
        {**TWO, "train.zip": zip_bytes({"train/cats/a.jpg": b"a"})},
        {},
        "the data holds train/cats/a.jpg twice (data.zip: 'train/cats/a.jpg', train.zip: 'train/cats/a.jpg')",
    ),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_each_refusal_is_one_line_and_writes_nothing(tmp_path: Path, case: str):
    files, params, line = REFUSALS[case]
    assert line in refused(tmp_path, files, **params)


def test_zip_safety_and_size_limits_hold_for_plain_trees_and_inner_zips(tmp_path: Path):
    plain = {**TWO, "train/cats/big.jpg": b"\0" * 2000}
    line = refused(tmp_path, plain, max_photo_bytes=1000)
    assert line.startswith("data.zip holds 'train/cats/big.jpg' of 2000 bytes unpacked, over reorganize.max_photo")
    inner = {"train.zip": zip_bytes({"cats/a.jpg": b"a", "dogs/b.jpg": b"\0" * 2000}), "test/1.jpg": b"1"}
    assert refused(tmp_path, inner, max_photo_bytes=1000).startswith("train.zip holds 'dogs/b.jpg' of 2000 bytes")
    assert "over reorganize.max_unpacked_bytes" in refused(tmp_path, plain, max_unpacked_bytes=100)
    climbing = {"train.zip": zip_bytes({"cats/a.jpg": b"a", "../dogs/b.jpg": b"b"}), "test/1.jpg": b"1"}
    assert "train.zip holds '../dogs/b.jpg', an absolute or '..' path" in refused(tmp_path, climbing)
    (tmp_path / "data.zip").write_bytes(patched_headers(zip_bytes(TWO), compress_type=9))
    with pytest.raises(StageError, match=r"^data.zip holds 'train/cats/a.jpg' compressed with Deflate64"):
        reorganize(tmp_path / "data.zip", tmp_path / "o", tmp_path / "o.csv", tmp_path / "c.json", reorganize_params())
    encrypted_inside = {"train.zip": patched_headers(zip_bytes({"cats/a.jpg": b"a", "dogs/b.jpg": b"b"}), flag_bits=1)}
    assert "train.zip holds 'cats/a.jpg' encrypted with a password" in refused(tmp_path, {**encrypted_inside, **TOP})


# ---- the real photos: the competition archive and the same photos as a folder of class folders --------------


@pytest.mark.skipif(not REAL_ARCHIVE.is_file(), reason="the real-sample archive is not on this machine")
def test_the_real_sample_as_class_folders_gives_the_archives_photos_classes_and_test_ids(tmp_path: Path):
    """The same photos sorted into class folders: the archive's rows, but each train id after its class folder."""
    by_archive, by_folders = tmp_path / "archive", tmp_path / "folders"
    by_archive.mkdir()
    by_folders.mkdir()
    reorganize(
        REAL_ARCHIVE,
        by_archive / "photos.zip",
        by_archive / "organized.csv",
        by_archive / "classes.json",
        reorganize_params(),
    )
    files = {}
    with zipfile.ZipFile(REAL_ARCHIVE) as outer:
        for inner_name in ("train.zip", "test.zip"):
            with zipfile.ZipFile(io.BytesIO(outer.read(inner_name))) as inner:
                for name in inner.namelist():
                    photo = Path(name).name
                    if name.endswith("/"):
                        continue
                    folder = "test" if inner_name == "test.zip" else f"{photo.split('.')[0]}s"
                    files[f"{folder}/{photo}"] = inner.read(name)
        files["sample_submission.csv"] = outer.read("sample_submission.csv")
    done, manifest, _ = organize(by_folders, files, **{**TOP, "sample_submission": "sample_submission.csv"})
    assert done.counts == {"train/cats": 100, "train/dogs": 100, "test/unknown": 50}
    archived = read_manifest(by_archive / "organized.csv")
    # Row for row: the same subset, class, path and bytes (md5), in the same order; a train id is cats/cat.1, not cat.1.
    assert manifest == [e._replace(id=f"{e.class_name}/{e.id}") if e.subset == "train" else e for e in archived]
    assert [e.id for e in manifest if e.subset == "test"] == [str(i) for i in range(1, 51)]
    folders_store, archive_store = store_bytes(by_folders / "photos.zip"), store_bytes(by_archive / "photos.zip")
    for entry in manifest:
        assert folders_store[entry.path] == archive_store[entry.path]
    assert (by_folders / "classes.json").read_bytes() == (by_archive / "classes.json").read_bytes()
