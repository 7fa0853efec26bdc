"""Stage features@<shard>: run VGG16's conv base once per photo of one shard and cache pool5 (float16) per subset.

`python -m tasks.features <shard>` reads split's photo store of the shard (data/shards/<shard>.zip) and writes
data/features/<shard>/; train and predict join the shards listed in features.shards (tasks/vgg/feature_store.py).
"""

from __future__ import annotations

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
from tasks.photos.photo_store import PhotoStore
from tasks.photos.shards import CONV_SUBSETS, shard_entries
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

METRICS_FILE = "undecodable.json"
# The precision asked for and the one the runtime ran (it may ignore the ask): kept with the features, and shown
# as a metric (`dvc metrics show`), which the lineage records embed.
PRECISION_FILE = "precision.json"
SAMPLE_SUBSETS = {"sample_train": "train", "sample_valid": "valid"}  # sample subset -> the subset it is cut from
# At most one progress line this often (and the last): a line per batch is ~2,300 lines at full size.
PROGRESS_SECONDS = 5.0


class Photo(NamedTuple):
    """A photo to run: its id, target (its class's index in the class list; -1 unknown), path, listed md5, member.

    path is where the class folders put it (organized/<member>), which the index records; the bytes are read from
    the shard's photo store by member, the manifest path.
    """

    id: str
    target: int
    path: Path
    md5: str
    member: str


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


def to_photos(entries: list[PhotoEntry], organized: Path, classes: tuple[str, ...]) -> list[Photo]:
    """entries as photos to run, in their order."""
    return [Photo(e.id, photo_target(e, classes), organized / e.path, e.md5, e.path) for e in entries]


def subset_photos(entries: list[PhotoEntry], subset: str, organized: Path, classes: tuple[str, ...]) -> list[Photo]:
    """The photos of one manifest subset, in manifest order (class, then natural order; test by number)."""
    return to_photos(in_subset(entries, subset), organized, classes)


def _decode(store: PhotoStore, photo: Photo, size: int, max_bytes: int) -> tuple[np.ndarray, str | None]:
    """The checked photo decoded at size x size, or a blank frame and why it can't be decoded.

    The read is bounded and checked against the split manifest's md5 (PhotoStore.read_checked): what the conv base
    sees is tied to the manifest features depends on, and a file over max_bytes is never held whole in memory.
    """
    data = store.read_checked(photo.member, photo.md5, max_bytes)
    if len(data) > max_bytes:
        return blank_frame(size), f"larger than reorganize.max_photo_bytes ({max_bytes} bytes); not read whole"
    return decode_or_blank(io.BytesIO(data), size)


def preprocessed_batches(
    store: PhotoStore,
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
        submitted = None if start is None else [pool.submit(_decode, store, p, size, max_photo_bytes) for p in chunk]
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
        self,
        stage: str,
        subset: str,
        total: int,
        every: float = PROGRESS_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stage, self.subset, self.total, self.every, self.clock = stage, subset, total, every, clock
        self.began = self.shown = clock()

    def line(self, done: int) -> str | None:
        """The line to show after done photos, or None while the last one is under `every` seconds old."""
        now = self.clock()
        if done < self.total and now - self.shown < self.every:
            return None
        self.shown = now
        elapsed = now - self.began
        rate = done / elapsed if elapsed > 0 else float("inf")
        so_far = f"{self.stage}: {self.subset} {done:,}/{self.total:,} photos"
        if done >= self.total:
            return f"{so_far} in {duration(elapsed)}, {rate:.1f} photos/s"
        return f"{so_far} ({done / self.total:.0%}), {rate:.1f} photos/s, {duration((self.total - done) / rate)} left"


def extract(
    conv: ConvRunner,
    store: PhotoStore,
    photos: list[Photo],
    params: FeaturesParams,
    max_photo_bytes: int,
    out: np.ndarray,
    stage: str,
    subset: str,
    clock: Callable[[], float] = time.monotonic,
) -> dict[int, str]:
    """Fill out (N, *cut shape) with the conv base's output for each photo, reporting progress on stdout.

    Returns the rows whose photo is undecodable, with the reason; their rows hold a blank frame's features.
    """
    done, progress = 0, Progress(stage, subset, len(photos), clock=clock)
    undecodable: dict[int, str] = {}
    with ThreadPoolExecutor(max_workers=2) as pool:
        for batch in preprocessed_batches(store, photos, params, max_photo_bytes, pool, undecodable):
            out[done : done + len(batch)] = np.asarray(conv(batch), dtype=np.float16)
            done += len(batch)
            if line := progress.line(done):
                print(line, flush=True)
    return undecodable


def precision_record(params: FeaturesParams, conv: ConvRunner) -> dict[str, str]:
    """The backend, the precision features.precision asks for, and the one the runtime runs (precision_used)."""
    return {"backend": params.backend, "precision": params.precision, "precision_used": conv.precision_used}


def stage_name(shard: int) -> str:
    """The DVC stage of a shard, as dvc.yaml's foreach names it and as its lines begin: features@0."""
    return f"features@{shard}"


def sample_part(entries: list[PhotoEntry], sample: str, part: list[PhotoEntry]) -> list[PhotoEntry]:
    """The rows of sample subset sample whose photo is in part (this shard's rows of its source), in manifest order.

    split lists a sample subset's photos in the order of the subset it is drawn from, so the shards' parts, joined in
    shard order, are the whole sample subset in its own order.
    """
    paths = {e.path for e in part}
    return [e for e in in_subset(entries, sample) if e.path in paths]


def features(
    manifest: Path,
    store: Path,
    organized: Path,
    dest: Path,
    params: FeaturesParams,
    max_photo_bytes: int,
    class_list: Path,
    shard: int,
) -> dict[str, int]:
    """Cache pool5 of shard's train, valid and test photos under dest, and cut its sample rows from them.

    The photos are read from store (split's photo store of the shard, or any store holding them); organized is
    where the index says they are (their class-folder paths). A photo file over max_photo_bytes
    (reorganize.max_photo_bytes) is undecodable: it is never read whole. A photo's target is its class's index in
    class_list (reorganize's classes.json). Returns rows per subset.
    """
    from tasks.vgg.vgg16 import conv_base, load_vgg16  # TensorFlow loads only when a stage needs it

    if shard not in params.shards:
        raise StageError(
            f"shard {shard} is not in features.shards ({list(params.shards)}); run the features@<shard> stages "
            "that params.yaml lists (`dvc repro`)"
        )
    entries, classes = read_manifest(manifest), read_class_list(class_list).classes
    parts = shard_entries(entries, shard, len(params.shards), params.batch_size)
    photos = {subset: to_photos(parts[subset], organized, classes) for subset in CONV_SUBSETS}
    vgg_conv = conv_base(load_vgg16(params), params.layer)
    conv = make_conv_runner(vgg_conv, params.backend, params.precision, params.xla)
    stage = stage_name(shard)
    warning = precision_warning(params.backend, params.precision, conv.precision_used)
    if warning:  # said before the conv pass, which can take an hour
        print(f"{stage}: {warning}", file=sys.stderr, flush=True)
    report = UndecodableReport(params.max_undecodable, len(classes))
    with atomic_dir(dest) as out, PhotoStore(store) as photo_store:
        computed = {}
        for subset in CONV_SUBSETS:
            folder = out / subset
            folder.mkdir()
            rows = photos[subset]
            cache = np.lib.format.open_memmap(
                folder / FEATURES_FILE, mode="w+", dtype=np.float16, shape=(len(rows), *vgg_conv.output_shape[1:])
            )
            undecodable = extract(conv, photo_store, rows, params, max_photo_bytes, cache, stage, subset)
            cache.flush()
            rows, cache = report.apply(subset, rows, undecodable, cache, folder / FEATURES_FILE)
            paths = [str(p.path) for p in rows]
            write_index(folder, [p.id for p in rows], [p.target for p in rows], paths)
            computed[subset] = FeatureSet([p.id for p in rows], np.array([p.target for p in rows]), paths, cache)
        counts = {s: len(computed[s].ids) for s in CONV_SUBSETS}
        for name, source in SAMPLE_SUBSETS.items():
            part = sample_part(entries, name, parts[source])
            ids = [e.id for e in part if not report.left_out(source, e.id)]
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


def shard_argument(argv: list[str]) -> int:
    """The shard number `python -m tasks.features <shard>` names (dvc.yaml's foreach passes it)."""
    if len(argv) != 1 or not argv[0].isdigit():
        raise StageError(
            f"expected one shard number, as `python -m tasks.features 0` (got {' '.join(argv) or 'none'}); "
            "dvc.yaml's features@<shard> stages pass it"
        )
    return int(argv[0])


def main() -> None:
    params = load_params()
    paths = load_paths()
    shard = shard_argument(sys.argv[1:])
    stage, dest = stage_name(shard), Path(paths.features) / str(shard)
    counts = features(
        Path(paths.split),
        Path(paths.shards) / f"{shard}.zip",
        Path(paths.organized),
        dest,
        params.features,
        params.reorganize.max_photo_bytes,
        Path(paths.classes),
        shard,
    )
    print(f"{stage}: " + ", ".join(f"{s} {n}" for s, n in counts.items()), file=sys.stderr)
    metrics = Path(paths.metrics) / "features" / str(shard)
    undecodable = undecodable_metrics(read_report(dest), CONV_SUBSETS)
    write_json(metrics / METRICS_FILE, undecodable)
    write_json(metrics / PRECISION_FILE, json.loads((dest / PRECISION_FILE).read_text()))
    if any(undecodable.values()):
        print(
            f"{stage}: warning: photos that can't be decoded: {undecodable}; see {dest / REPORT_FILE}",
            file=sys.stderr,
        )


if __name__ == "__main__":
    run_stage("features", main)
