"""bench/RESULTS.md from the figures of one `make bench` run: tables, ratios, and each target met or not."""

from __future__ import annotations

import json
from pathlib import Path

from bench.conv_pass import CONV_GFLOP
from bench.shard_report import shard_lines
from bench.workload import DENSE_EPOCHS, LAST_LAYER_EPOCHS, TEST, TRAIN, VALID

COURSE = "course: flow_from_directory + full VGG16 predict, batch 64"
STAGES = ("stage, backend keras", "stage, backend openvino")  # float32
ANY_STAGE = (*STAGES, "stage, backend openvino bf16")
FLOAT32_BACKENDS = ("backend keras (conv only)", "backend onnxruntime (conv only)", "backend openvino (conv only)")
DECODE = "input pipeline alone (decode + resize + preprocess, 2 threads)"


def verdict(ok: bool) -> str:
    return "**met**" if ok else "**NOT met**"


def gflops(name: str, rate: float) -> float:
    """A candidate's GFLOP/s from its images/s; the course's predict also runs the dense top."""
    return rate * CONV_GFLOP * (15.47 / 15.35 if name == COURSE else 1)


def conv_section(r: dict) -> list[str]:
    conv, gemm = r["conv"], max(r["gemm"].values())
    rates = conv["rates"]
    base = rates["stage, backend keras"]
    lines = [
        "## 1. Conv pass throughput",
        "",
        f"{conv['photos']} photos per candidate, {conv['rounds']} interleaved rounds, best round kept. "
        f"GEMM probe (2048x2048 FP32 matmul, best of numpy and TensorFlow): **{gemm / 1e9:.1f} GFLOP/s** "
        f"(numpy {r['gemm']['numpy'] / 1e9:.1f}, TensorFlow {r['gemm']['tensorflow'] / 1e9:.1f}). "
        f"One photo through the conv base is {CONV_GFLOP} GFLOP.",
        "",
        "| candidate | images/s | vs stage (keras) | GFLOP/s | % of GEMM probe |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name, rate in rates.items():
        if name == DECODE:
            continue
        flops = gflops(name, rate)
        lines.append(f"| {name} | {rate:.2f} | {rate / base:.2f}x | {flops:.1f} | {100 * flops / (gemm / 1e9):.0f}% |")
    fastest_name = max(FLOAT32_BACKENDS, key=rates.get)
    best_stage = max(STAGES, key=rates.get)
    share = rates[best_stage] / rates[fastest_name]
    peak = 100 * rates[best_stage] * CONV_GFLOP / (gemm / 1e9)
    best_any = max(ANY_STAGE, key=rates.get)
    fastest_any = max((k for k in rates if k.startswith("backend")), key=rates.get)
    lines += [
        "",
        "Largest feature difference from Keras, relative to the largest feature: "
        + ", ".join(f"{k} {v:.1e}" for k, v in conv["relative_difference_vs_keras"].items()),
        "",
        f"- Stage at least 0.9x the fastest float32 backend: best stage ({best_stage}) is {share:.2f}x "
        f"{fastest_name}: {verdict(share >= 0.9)}.",
        f"- The same against every backend, bf16 included: best stage ({best_any}) is "
        f"{rates[best_any] / rates[fastest_any]:.2f}x the fastest backend ({fastest_any}).",
        f"- Stage (float32) at least 75% of the GEMM probe: {peak:.0f}%: {verdict(peak >= 75)}. "
        "(bf16 rows can exceed the FP32 probe: they use the CPU's bf16 dot-product instructions. A float32 row near or "
        "above 100% says the conv pass runs as fast as the probe's matmul; both are noisy on shared cores.)",
        f"- The stage vs the course's way: {rates[best_stage] / rates[COURSE]:.2f}x (per photo, one pass).",
        "",
    ]
    return lines


def workload_section(r: dict) -> list[str]:
    w = r["workload"]
    totals = w["totals"]
    step_batch = w.get("course step batch", 8)  # results.json files from before it was recorded were timed at 8
    step = w["course step seconds per photo"]
    course_passes = (1 + LAST_LAYER_EPOCHS + DENSE_EPOCHS) * (TRAIN + VALID) + TEST
    features_bf16 = (TRAIN + VALID + TEST) / r["conv"]["rates"]["stage, backend openvino bf16"]
    ours_after_cache = sum(totals["ours"].values()) - totals["ours"]["features once (stage)"]
    course_share = gflops(COURSE, r["conv"]["rates"][COURSE]) / (max(r["gemm"].values()) / 1e9)
    bf16_total = ours_after_cache + features_bf16
    lines = [
        "## 2. The whole lesson workload, at the competition's size (23,000 train, 2,000 valid, 12,500 test)",
        "",
        "Measured in this run: per-photo seconds of the stage (figure 1), of the course's full-network predict "
        "(figure 1), of one full-network training step with the conv base frozen (last layer / dense layers "
        f"trainable, batch {step_batch}), of the dense-tail passes and of each head's epochs on "
        f"{w.get('head rows', 500):,} cached rows (train:valid as 23:2). "
        "**Extrapolated**: the totals below, per-photo cost x the competition's photo counts x the course's epochs "
        "(linear 3, last layer 2, dense layers 3, as in the course's lesson-2 notebook). The course's epochs are "
        "costed without its image loading (a pre-decoded batch), which flatters it. Our heads are the train stage's "
        "own (`fit_head` with `train.head` linear, last_layer and dense).",
        "",
        "| our way | seconds |",
        "| --- | ---: |",
        *[f"| {k} | {v:.0f} |" for k, v in totals["ours"].items()],
        f"| **total** | **{sum(totals['ours'].values()):.0f}** |",
        "",
        "| the course's way | seconds |",
        "| --- | ---: |",
        *[f"| {k} | {v:.0f} |" for k, v in totals["course"].items()],
        f"| **total** | **{sum(totals['course'].values()):.0f}** |",
        "",
        f"Per-photo training step through the full network: last layer {step['last_layer']:.3f} s, "
        f"dense layers {step['dense']:.3f} s.",
        "",
        f"- At least 5x faster (float32 both ways): {totals['ratio']:.1f}x: {verdict(totals['ratio'] >= 5)}.",
        f"- Why: with these epoch counts the course runs the conv base on {course_passes:,} photos "
        f"((1 + {LAST_LAYER_EPOCHS} + {DENSE_EPOCHS}) x {TRAIN + VALID:,} + {TEST:,}) against our "
        f"{TEST + TRAIN + VALID:,}: {course_passes / (TEST + TRAIN + VALID):.2f}x at equal per-photo cost, and the "
        "conv pass is already at the GEMM probe (figure 1); the course's own predict ran at "
        f"{course_share:.0%} of it in this run. Both ways then pay for the same dense-layer training (RMSprop "
        f"updating fc1's 103M weights every step), {ours_after_cache:.0f} s of our total, which pulls the ratio "
        "below that bound. Beating 5x at float32 would need a conv pass cheaper than the course's per photo, i.e. "
        "fewer FLOPs "
        "(Winograd-style convolution), not a better cache.",
        f"- With `features.backend: openvino` and `features.precision: mixed_bfloat16` (features within "
        f"{r['conv']['relative_difference_vs_keras']['openvino bf16']:.1%} of float32) our total is "
        f"{bf16_total:.0f} s: "
        f"{sum(totals['course'].values()) / bf16_total:.1f}x the course's float32 way (not equal precision).",
        "",
    ]
    return lines


def decode_section(r: dict) -> list[str]:
    rates = r["conv"]["rates"]
    stage = rates["stage, backend keras"]
    share = stage / rates[DECODE]
    large = stage / r["conv"]["decode_500x375"]
    return [
        "## 3. Decode and resize alone vs the stage's wall time",
        "",
        f"Input pipeline alone on the bench photos: {rates[DECODE]:.0f} photos/s; on synthetic photos up to 500x375 "
        f"(the competition's size): {r['conv']['decode_500x375']:.0f} photos/s. "
        f"The stage (backend keras): {stage:.2f} photos/s.",
        "",
        f"- Under 10% of the stage's wall time: bench photos {100 * share:.1f}%, 500x375 photos {100 * large:.1f}% "
        f"(decoding overlaps the conv pass on threads, so this is an upper bound): {verdict(max(share, large) < 0.1)}.",
        "",
    ]


def memory_section(r: dict) -> list[str]:
    rows = r["memory"]
    worst = max(m["peak_rss"] for m in rows)
    return [
        "## 4. Peak RSS of the features stage (`python -m tasks.features`, as DVC runs it)",
        "",
        "On synthetic photos (up to 256 px) at each count, whatever the bench photos are.",
        "",
        "| photos | seconds | peak RSS |",
        "| ---: | ---: | ---: |",
        *[f"| {m['photos']} | {m['seconds']:.0f} | {m['peak_rss'] / 2**30:.2f} GiB |" for m in rows],
        "",
        f"- Under 3 GB at both sizes, not growing with the photo count: {verdict(worst < 3e9)} "
        f"(growth {100 * (rows[-1]['peak_rss'] / rows[0]['peak_rss'] - 1):+.1f}% for "
        f"{rows[-1]['photos'] / rows[0]['photos']:.0f}x the photos). "
        "Features are written float16 into a memmap, batch by batch.",
        "",
    ]


def dag_section(r: dict) -> list[str]:
    small, scale = r["dag small"], r["dag at scale"]
    s = scale["seconds"]
    noop_small, noop_scale = small["noop"], scale["noop repro (whole DAG)"]
    reorganize_split = s["reorganize"] + s["split"]
    extra = scale["extra bytes from split + DVC cache"] / scale["photo bytes"]
    no_vgg = {
        "small": "features" not in small["ran_after_train_change"],
        "scale": "features" not in scale["ran_after_train_change"],
    }
    return [
        "## The DAG under DVC",
        "",
        f"Whole DAG on the bench photos ({small['photos']}, the set named at the top): first `dvc repro` "
        f"{small['first_run']:.0f} s; a `dvc repro` with nothing to do {noop_small['wall']:.2f} s wall, "
        f"{noop_small['cpu']:.2f} s CPU; after halving the first `train.phases` learning rate, `dvc repro` "
        f"took {small['train_change']:.0f} s and ran: {', '.join(small['ran_after_train_change']) or 'nothing'}.",
        "",
        f"Whole DAG at {scale['photos']:,} photos (synthetic, up to 256 px), with "
        f"`features.image_size: {scale['image_size']}`: "
        "the conv pass at 224 would take 40 minutes here, and DVC's bookkeeping, which this measures, does not depend "
        "on the size. Times are `dvc repro [<stage>]`, DVC's hashing and caching included:",
        "",
        "| step | wall seconds |",
        "| --- | ---: |",
        *[f"| `dvc repro {k}` | {v:.1f} |" for k, v in s.items()],
        f"| `dvc repro` with nothing to do | {noop_scale['wall']:.2f} (CPU {noop_scale['cpu']:.2f}) |",
        f"| `dvc repro` after halving the train learning rate | {scale['train_change']:.1f} "
        f"(ran: {', '.join(scale['ran_after_train_change'])}) |",
        "",
        f"The photo store takes {scale['photo bytes'] / 2**20:.0f} MiB; reorganize's index, split's manifest and "
        "DVC's cache add "
        f"{scale['extra bytes from split + DVC cache'] / 2**20:.1f} MiB ({100 * extra:.2f}%; "
        "`cache.type: hardlink,copy` links the cache to the photos, and split writes one CSV instead of a folder per "
        "subset).",
        "",
        "reorganize's output is one photo store, data/photos.zip (issue 16; before, a 37,500-file folder); split "
        "depends on reorganize's manifest (each photo's md5 inside), so a no-op `dvc repro` checks one file for the "
        "photos, not 37,500 (`python -m bench.noop` compares the two layouts).",
        "",
        f"- No-op `dvc repro` under 3 s: whole DAG at {small['photos']} photos {noop_small['wall']:.2f} s wall: "
        f"{verdict(noop_small['wall'] < 3)}; whole DAG at {scale['photos']:,} photos {noop_scale['wall']:.2f} s wall: "
        f"{verdict(noop_scale['wall'] < 3)}.",
        f"- No VGG pass after a train param change: {small['photos']} photos {verdict(no_vgg['small'])}, "
        f"{scale['photos']:,} photos {verdict(no_vgg['scale'])}.",
        f"- reorganize + split under 60 s at {scale['photos']:,}: {reorganize_split:.0f} s: "
        f"{verdict(reorganize_split < 60)}.",
        f"- Under 5% extra disk: {100 * extra:.2f}%: {verdict(extra < 0.05)}.",
        "",
    ]


def noop_section(n: dict) -> list[str]:
    """bench/noop.json (`python -m bench.noop`): the no-op `dvc repro` with the photo store and with the folders."""
    noop, built = n["noop"], n["build seconds"]
    rows = {
        "photo store (data/photos.zip)": ("store", n["tracked files"]["store"]),
        "photo store, `make browse`'s copy deleted": ("store, browse copy deleted", n["tracked files"]["store"]),
        f"class folders (commit {n['old layout commit']})": ("folders", n["tracked files"]["folders"]),
    }
    store = noop["store"]["median wall"]
    return [
        f"## No-op `dvc repro` at {n['photos']:,} photos: the photo store against the class folders (issue 16)",
        "",
        f"Produced by `{n['command']}` (`PYTHONPATH=.`), on {n['machine']['cpu']}, {n['machine']['cores usable']} "
        f"cores, {n['machine']['memory']}, SIMD {n['machine']['simd']}, load average at start "
        f"{n['machine']['load average at start']}; DVC {n['machine']['dvc']}. One synthetic archive of "
        f"{n['photos']:,} photos ({2 * (n['photos'] // 3):,} train, {n['photos'] - 2 * (n['photos'] // 3):,} test; "
        f"at most {n['photo side']} px, so it builds in "
        f"{built['archive']:.0f} s) through the whole DAG in two workspaces, `features.image_size: "
        f"{n['image size']}`: this checkout (reorganize writes one zip) and commit {n['old layout commit']}, the last "
        f"before issue 16 (reorganize writes the class folders, each photo a file DVC checks), exported with `git "
        f"archive`. Building them (reorganize, then the rest of the DAG) took {built['store']:.0f} s and "
        f"{built['folders']:.0f} s. The store's workspace also holds `make browse`'s copy of the folders (git-ignored, "
        "so DVC's search for dvc.yaml files skips it; a features stage that reads the class folders reads that "
        "copy), then not. No-op runs alternate between the workspaces, "
        f"{noop['store']['runs']} each. On a shared machine wall time exceeds CPU time; the CPU time is what a no-op "
        "costs on an idle one:",
        "",
        "| layout | files the stages' outputs hold | median wall s | best wall s | median CPU s |",
        "| --- | ---: | ---: | ---: | ---: |",
        *[
            f"| {label} | {files:,} | {noop[key]['median wall']:.2f} | {noop[key]['best wall']:.2f} | "
            f"{noop[key]['median cpu']:.2f} |"
            for label, (key, files) in rows.items()
        ],
        "",
        f"- The folders' no-op takes {n['ratio (folders / store, median wall)']:.1f}x the store's (median wall).",
        f"- The store's no-op under 1.5 s on this machine: {store:.2f} s: {verdict(store < 1.5)}.",
        "",
    ]


def write_report(r: dict, target: Path) -> None:
    """Render the results as markdown."""
    machine = r["machine"]
    smoke = "--quick" in r["command"].split()
    lines = [
        "# Benchmarks (issue 7)",
        "",
        f"Produced by `{r['command']}` (`make bench` runs it with the defaults) in {r['total seconds'] / 60:.1f} min. "
        f"**Photos: {r['photos used']}.** "
        "VGG16 with `weights: none` (same shapes and FLOPs as ImageNet's). Every ratio is between candidates "
        "measured in this one run; the machine is shared, so absolute rates move from run to run.",
        "",
        *(["**A smoke run (`--quick`): sizes too small for these figures to mean anything.**", ""] if smoke else []),
        "| machine | |",
        "| --- | --- |",
        *[f"| {k} | {v} |" for k, v in machine.items()],
        "",
    ]
    lines += conv_section(r) + workload_section(r) + decode_section(r) + memory_section(r) + dag_section(r)
    noop = target.parent / "noop.json"  # `python -m bench.noop`, run on its own: kept when `make bench` rewrites this
    if noop.is_file():
        lines += noop_section(json.loads(noop.read_text()))
    lines += [
        "## GPU",
        "",
        "`bash bench/gpu.sh [--images N] [--batch-size B]` runs the Keras conv pass (`make_conv_runner`, XLA on) on "
        "synthetic images in float32 and mixed_bfloat16 and prints images/s for each and the largest feature "
        "difference. It uses TensorFlow with CUDA when `.venv` has it (`uv sync --extra gpu`), else Keras on the "
        "host's JAX; for the device tool's H200 image (JAX with CUDA, no Keras, no network) `make gpu-wheels` "
        "fetches the wheels to carry in `.whl/`. **It has not been run on a GPU**: none was lent to this task, so "
        "the 5,000 images/s bf16 target on an H200 is unmeasured. Its CPU paths were checked with `--images 2 "
        "--batch-size 2` on TensorFlow (bf16 vs float32: 0.90% of the largest feature) and `--images 4 "
        "--batch-size 2` on JAX with the carried wheels (0.48%).",
        "",
    ]
    shards = target.parent / "shards.json"  # `python -m bench.shards`' figures, measured in their own run
    if shards.exists():
        lines += shard_lines(json.loads(shards.read_text()), r)
    target.write_text("\n".join(lines))
