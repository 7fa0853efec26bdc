"""Figures 1 and 3: conv-pass throughput of the stage, the course's way and each backend; the input pipeline alone."""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from bench.photos import all_photos, stage_limits
from tasks.competition.synthetic import build_synthetic_archive
from tasks.core.params import FeaturesParams
from tasks.features import Photo, extract, preprocessed_batches
from tasks.photos.decode import load_photo
from tasks.photos.photo_store import PhotoStore, PhotoStoreWriter
from tasks.reorganize import reorganize
from tasks.vgg.conv_backends import make_conv_runner
from tasks.vgg.layers import POOL5
from tasks.vgg.preprocess import caffe_preprocess

CONV_GFLOP = 30.7  # VGG16's conv base: 15.35 GMACs per 224x224 image, 2 FLOPs each
SIDE = 224  # photos' side here: VGG16's own, which CONV_GFLOP and the course's loader assume
COURSE_BATCH = 64  # the course's get_batches default
# The features stage as params.yaml runs it by default, but with random weights: same shapes, same FLOPs as ImageNet's.
STAGE = FeaturesParams(
    weights="none",
    seed=0,
    batch_size=16,
    layer=POOL5,
    backend="keras",
    precision="float32",
    xla=False,
    max_undecodable=0,
    image_size=SIDE,
    shards=(0,),
)


def best_rate(run, images: int, rounds: int) -> float:
    """Best images/s over rounds of run() (each processing `images`): the least disturbed by neighbours' load."""
    best = float("inf")
    for _ in range(rounds):
        began = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - began)
    return images / best


def photo_store(photos: list[Photo], target: Path) -> Path:
    """A photo store at target holding photos (their files' bytes) under their members, as split writes a shard's."""
    with PhotoStoreWriter(target) as writer:
        for photo in photos:
            writer.add_bytes(photo.member, photo.path.read_bytes())
    return target


def course_iterator(photos: list[Photo], scratch: Path):
    """The course's loader: ImageDataGenerator with VGG16's preprocessing, flow_from_directory at batch 64, in order."""
    from keras.applications.vgg16 import preprocess_input

    # Keras 3.15 no longer exports the course's ImageDataGenerator publicly; its code still ships here.
    from keras.src.legacy.preprocessing.image import ImageDataGenerator

    folder = scratch / "course" / "photos"
    folder.mkdir(parents=True, exist_ok=True)
    for i, p in enumerate(photos):
        link = folder / f"{i:06d}.jpg"
        if not link.exists():
            os.symlink(p.path.resolve(), link)
    generator = ImageDataGenerator(preprocessing_function=preprocess_input)
    return lambda: generator.flow_from_directory(
        folder.parent, target_size=(SIDE, SIDE), batch_size=COURSE_BATCH, class_mode=None, shuffle=False
    )


def measure_conv(photos: list[Photo], scratch: Path, rounds: int = 2) -> dict:
    """Images/s of each candidate on the same photos, interleaved round by round, plus decode-alone timings."""
    from tasks.vgg.vgg16 import conv_base, load_vgg16

    vgg = load_vgg16(STAGE)
    conv = conv_base(vgg, STAGE.layer)
    n, batch = len(photos), STAGE.batch_size
    decoded = np.stack([load_photo(p.path, SIDE) for p in photos])
    store = PhotoStore(photo_store(photos, scratch / "photos.zip"))  # what the stage reads: a shard's photo store
    batches = [caffe_preprocess(decoded[i : i + batch]) for i in range(0, n, batch)]
    runners = {
        "keras": make_conv_runner(conv, "keras", "float32", xla=False),
        "onnxruntime": make_conv_runner(conv, "onnxruntime", "float32", xla=False),
        "openvino": make_conv_runner(conv, "openvino", "float32", xla=False),
        "openvino bf16": make_conv_runner(conv, "openvino", "mixed_bfloat16", xla=False),
    }
    reference = runners["keras"](batches[0])
    differences = {
        name: float(np.abs(run(batches[0]) - reference).max() / np.abs(reference).max())
        for name, run in runners.items()
    }
    make_course = course_iterator(photos, scratch)
    vgg.predict(make_course(), verbose=0)  # warm-up: traces predict's function once
    out = np.zeros((n, 7, 7, 512), dtype=np.float16)
    decode_pool = ThreadPoolExecutor(max_workers=2)

    limit = stage_limits().max_photo_bytes

    def stage(backend: str):
        return lambda: extract(runners[backend], store, photos, STAGE, limit, out, "bench", "bench")

    def conv_only(backend: str):
        return lambda: [runners[backend](b) for b in batches]

    def decode_only():
        for _ in preprocessed_batches(store, photos, STAGE, limit, decode_pool, {}):
            pass

    candidates = {f"backend {name} (conv only)": conv_only(name) for name in runners}
    candidates["course: flow_from_directory + full VGG16 predict, batch 64"] = lambda: vgg.predict(
        make_course(), verbose=0
    )
    candidates["stage, backend keras"] = stage("keras")
    candidates["stage, backend openvino"] = stage("openvino")
    candidates["stage, backend openvino bf16"] = stage("openvino bf16")
    candidates["input pipeline alone (decode + resize + preprocess, 2 threads)"] = decode_only
    rates = {name: 0.0 for name in candidates}
    for _ in range(rounds):  # interleaved, so a burst of load from others hits every candidate alike
        for name, run in candidates.items():
            rates[name] = max(rates[name], best_rate(run, n, 1))
    large = competition_size_decode(scratch, decode_pool)
    decode_pool.shutdown()
    store.close()
    return {
        "photos": n,
        "rounds": rounds,
        "rates": rates,
        "relative_difference_vs_keras": differences,
        "decode_500x375": large,
    }


def competition_size_decode(scratch: Path, pool: ThreadPoolExecutor, count: int = 64) -> float:
    """Images/s of the input pipeline alone on synthetic photos at the competition's size (up to 500x375)."""
    archive = scratch / "large.zip"
    build_synthetic_archive(archive, seed=1, train_per_class=count // 2, test_count=1, max_side=500)
    limits = stage_limits()
    reorganize(archive, scratch / "large", scratch / "large.csv", scratch / "large.classes.json", limits)
    photos = all_photos(scratch / "large")

    def decode_only():
        for _ in preprocessed_batches(store, photos, STAGE, limits.max_photo_bytes, pool, {}):
            pass

    with PhotoStore(scratch / "large") as store:  # reorganize's store holds every photo: one shard's worth
        return max(best_rate(decode_only, len(photos), 1) for _ in range(2))
