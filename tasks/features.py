"""Stage features: run VGG16's conv base once per photo and cache pool5 (float16) for every subset."""

from __future__ import annotations

import hashlib
import io
import json
import sys
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

import numpy as np

from tasks.core.atomic_output import atomic_dir, write_json
from tasks.core.errors import StageError, run_stage
from tasks.core.params import FeaturesParams, load_params
from tasks.core.paths import load_paths
from tasks.photos.class_list import TEST_CLASS, read_class_list
from tasks.photos.manifest import PhotoEntry, in_subset, read_manifest
from tasks.photos.undecodable import (
    REPORT_FILE,
    UndecodableReport,
    blank_frame,
    decode_or_blank,
    read_report,
    undecodable_metrics,
)
from tasks.vgg.conv_backends import ConvRunner, make_conv_runner, precision_warning
from tasks.vgg.feature_store import FEATURES_FILE, UNKNOWN_TARGET, FeatureSet, select_rows, write_index
from tasks.vgg.preprocess import caffe_preprocess

# Conv passes run on these; the sample subsets are cut from their rows, never recomputed.
CONV_SUBSETS = ("train", "valid", "test")
METRICS_FILE = "undecodable.json"
# The precision asked for and the one the runtime ran (it may ignore the ask): kept with the features, and shown
# as a metric (`dvc metrics show`), which the lineage records embed.
PRECISION_FILE = "precision.json"
SAMPLE_SUBSETS = {"sample_train": "train", "sample_valid": "valid"}  # sample subset -> the subset it is cut from
_HASH_CHUNK = 1 << 20
# At most one progress line this often (and the last): a line per batch is ~2,300 lines at full size.
PROGRESS_SECONDS = 5.0


class Photo(NamedTuple):
    """A photo to run: its id, target (its class's index in the class list; -1 unknown), file, and its listed md5."""

    id: str
    target: int
    path: Path
    md5: str


def photo_target(entry: PhotoEntry, classes: tuple[str, ...]) -> int:
    """The photo's target: its class's index in classes, or UNKNOWN_TARGET for a test photo."""
    if entry.class_name == TEST_CLASS:
        return UNKNOWN_TARGET
    if entry.class_name not in classes:
        raise StageError(
            f"{entry.path} is of class {entry.class_name!r}, which the class list ({', '.join(classes)}) lacks; "
            "run `dvc repro`, whose reorganize and split write both from the same photos"
        )
    return classes.index(entry.class_name)


def subset_photos(entries: list[PhotoEntry], subset: str, organized: Path, classes: tuple[str, ...]) -> list[Photo]:
    """The photos of one manifest subset, in manifest order (class, then natural order; test by number)."""
    return [Photo(e.id, photo_target(e, classes), organized / e.path, e.md5) for e in in_subset(entries, subset)]


def read_checked(photo: Photo, max_bytes: int) -> bytes:
    """The photo's bytes, refused unless they are the ones the split manifest lists; at most max_bytes + 1 of them.

    DVC checks the photo folder only as reorganize's output; this check ties what the conv base sees to the
    manifest that features depends on. The read is bounded: a file over max_bytes comes back cut at max_bytes + 1
    bytes, and the rest of it is only hashed, a chunk at a time, never held whole in memory.
    """
    try:
        with open(photo.path, "rb") as source:
            data = source.read(max_bytes + 1)
            digest = hashlib.md5(data)
            while len(data) > max_bytes and (chunk := source.read(_HASH_CHUNK)):
                digest.update(chunk)
    except FileNotFoundError:
        raise StageError(
            f"{photo.path} is listed in the split manifest but missing; "
            "run `dvc repro` (or `dvc checkout`) to restore the photo folder"
        ) from None
    actual = digest.hexdigest()
    if actual != photo.md5:
        raise StageError(
            f"{photo.path} changed after the split manifest was written (md5 {actual}, listed "
            f"{photo.md5}); run `dvc repro`, which restores or re-indexes the photos first"
        )
    return data


def _decode(photo: Photo, size: int, max_bytes: int) -> tuple[np.ndarray, str | None]:
    """The checked photo decoded at size x size, or a blank frame and why it can't be decoded."""
    data = read_checked(photo, max_bytes)
    if len(data) > max_bytes:
        return blank_frame(size), f"larger than reorganize.max_photo_bytes ({max_bytes} bytes); not read whole"
    return decode_or_blank(io.BytesIO(data), size)


def preprocessed_batches(
    photos: list[Photo],
    params: FeaturesParams,
    max_photo_bytes: int,
    pool: ThreadPoolExecutor,
    undecodable: dict[int, str],
):
    """Yield the conv base's input, features.batch_size photos at a time, decoding the next batch on threads.

    The stage's whole input pipeline (read, md5 check, decode, resize, caffe preprocessing); bench/ times it alone.
    An undecodable photo (one over max_photo_bytes too) becomes a blank frame; its row and reason go in undecodable.
    """
    size, starts = params.image_size, range(0, len(photos), params.batch_size)
    pending: list[Future] | None = None
    start_of_pending = 0  # row index of pending's first photo
    for start in [*starts, None]:
        chunk = [] if start is None else photos[start : start + params.batch_size]
        submitted = None if start is None else [pool.submit(_decode, p, size, max_photo_bytes) for p in chunk]
        if pending is not None:
            decoded = [f.result() for f in pending]
            undecodable.update({start_of_pending + i: why for i, (_, why) in enumerate(decoded) if why is not None})
            yield caffe_preprocess(np.stack([rgb for rgb, _ in decoded]))
        pending, start_of_pending = submitted, start


def duration(seconds: float) -> str:
    """seconds as a person reads a wait: 42s, 9m 05s, 1h 02m."""
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m {whole % 60:02d}s"
    return f"{whole // 3600}h {whole // 60 % 60:02d}m"


class Progress:
    """One conv pass's progress lines: photos done, rate and time left, at most one per `every` seconds, and the last.

    clock is injected so that tests step time instead of sleeping.
    """

    def __init__(
        self, subset: str, total: int, every: float = PROGRESS_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.subset, self.total, self.every, self.clock = subset, total, every, clock
        self.began = self.shown = clock()

    def line(self, done: int) -> str | None:
        """The line to show after done photos, or None while the last one is under `every` seconds old."""
        now = self.clock()
        if done < self.total and now - self.shown < self.every:
            return None
        self.shown = now
        elapsed = now - self.began
        rate = done / elapsed if elapsed > 0 else float("inf")
        so_far = f"features: {self.subset} {done:,}/{self.total:,} photos"
        if done >= self.total:
            return f"{so_far} in {duration(elapsed)}, {rate:.1f} photos/s"
        return f"{so_far} ({done / self.total:.0%}), {rate:.1f} photos/s, {duration((self.total - done) / rate)} left"


def extract(
    conv: ConvRunner,
    photos: list[Photo],
    params: FeaturesParams,
    max_photo_bytes: int,
    out: np.ndarray,
    subset: str,
    clock: Callable[[], float] = time.monotonic,
) -> dict[int, str]:
    """Fill out (N, *cut shape) with the conv base's output for each photo, reporting progress on stdout.

    Returns the rows whose photo is undecodable, with the reason; their rows hold a blank frame's features.
    """
    done, progress = 0, Progress(subset, len(photos), clock=clock)
    undecodable: dict[int, str] = {}
    with ThreadPoolExecutor(max_workers=2) as pool:
        for batch in preprocessed_batches(photos, params, max_photo_bytes, pool, undecodable):
            out[done : done + len(batch)] = np.asarray(conv(batch), dtype=np.float16)
            done += len(batch)
            if line := progress.line(done):
                print(line, flush=True)
    return undecodable


def precision_record(params: FeaturesParams, conv: ConvRunner) -> dict[str, str]:
    """The backend, the precision features.precision asks for, and the one the runtime runs (precision_used)."""
    return {"backend": params.backend, "precision": params.precision, "precision_used": conv.precision_used}


def features(
    manifest: Path, organized: Path, dest: Path, params: FeaturesParams, max_photo_bytes: int, class_list: Path
) -> dict[str, int]:
    """Cache pool5 for train, valid and test under dest, and cut the sample sets from them; return rows per subset.

    A photo file over max_photo_bytes (reorganize.max_photo_bytes) is undecodable: it is never read whole. A
    photo's target is its class's index in class_list (reorganize's classes.json).
    """
    from tasks.vgg.vgg16 import conv_base, load_vgg16  # TensorFlow loads only when a stage needs it

    entries, classes = read_manifest(manifest), read_class_list(class_list).classes
    photos = {subset: subset_photos(entries, subset, organized, classes) for subset in CONV_SUBSETS}
    vgg_conv = conv_base(load_vgg16(params), params.layer)
    conv = make_conv_runner(vgg_conv, params.backend, params.precision, params.xla)
    warning = precision_warning(params.backend, params.precision, conv.precision_used)
    if warning:  # said before the conv pass, which can take an hour
        print(f"features: {warning}", file=sys.stderr, flush=True)
    report = UndecodableReport(params.max_undecodable, len(classes))
    with atomic_dir(dest) as out:
        computed = {}
        for subset in CONV_SUBSETS:
            folder = out / subset
            folder.mkdir()
            rows = photos[subset]
            cache = np.lib.format.open_memmap(
                folder / FEATURES_FILE, mode="w+", dtype=np.float16, shape=(len(rows), *vgg_conv.output_shape[1:])
            )
            undecodable = extract(conv, rows, params, max_photo_bytes, cache, subset)
            cache.flush()
            rows, cache = report.apply(subset, rows, undecodable, cache, folder / FEATURES_FILE)
            paths = [str(p.path) for p in rows]
            write_index(folder, [p.id for p in rows], [p.target for p in rows], paths)
            computed[subset] = FeatureSet([p.id for p in rows], np.array([p.target for p in rows]), paths, cache)
        counts = {s: len(computed[s].ids) for s in CONV_SUBSETS}
        for name, source in SAMPLE_SUBSETS.items():
            ids = [e.id for e in in_subset(entries, name) if not report.left_out(source, e.id)]
            chosen = select_rows(computed[source], ids)
            folder = out / name
            folder.mkdir()
            np.save(folder / FEATURES_FILE, chosen.features)
            write_index(folder, chosen.ids, chosen.targets.tolist(), chosen.paths)
            counts[name] = len(chosen.ids)
        report.write(out)
        write_json(out / PRECISION_FILE, precision_record(params, conv))
        del computed  # release the memmaps before the folder is renamed
    return counts


def main() -> None:
    params = load_params()
    paths = load_paths()
    counts = features(
        Path(paths.split),
        Path(paths.organized),
        Path(paths.features),
        params.features,
        params.reorganize.max_photo_bytes,
        Path(paths.classes),
    )
    print("features: " + ", ".join(f"{s} {n}" for s, n in counts.items()), file=sys.stderr)
    undecodable = undecodable_metrics(read_report(Path(paths.features)), CONV_SUBSETS)
    write_json(Path(paths.metrics) / METRICS_FILE, undecodable)
    write_json(Path(paths.metrics) / PRECISION_FILE, json.loads((Path(paths.features) / PRECISION_FILE).read_text()))
    if any(undecodable.values()):
        print(
            f"features: warning: photos that can't be decoded: {undecodable}; see {Path(paths.features) / REPORT_FILE}",
            file=sys.stderr,
        )


if __name__ == "__main__":
    run_stage("features", main)
