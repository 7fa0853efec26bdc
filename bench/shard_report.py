"""The shard bench's section of bench/RESULTS.md, from bench/shards.json (`python -m bench.shards` writes both)."""

from __future__ import annotations

import json
from pathlib import Path
from statistics import median

from bench.shard_figures import Projection, fan_out_seconds, shard_seconds

HEADING = "## Shards: the conv pass on 1 worker vs 2 workers (issue 16)"
FIXED_STEPS = ("sync_pull", "dvc_start", "stage_other", "finish")
REAL_PHOTOS = 37_500  # the competition's: 23,000 train + 2,000 valid + 12,500 test, each through the conv base once
PHOTO_BYTES = 35_000  # a competition photo in a shard store: the figure this projection was briefed with, not measured
POOL5_BYTES = 7 * 7 * 512 * 2  # one photo's cached features: pool5, float16
BANDWIDTH = 100e6  # bytes/s between a worker and the bucket: an assumption (about a 1 Gbit/s link), not measured
GPU_TARGET = 5_000  # photos/s: issue 7's bf16 target for an H200, never measured (bench/RESULTS.md, GPU)
WORKERS = (1, 4, 16)


def shard_runs(r: dict) -> list[dict]:
    """Every shard run of every case, in order."""
    return [run for case in r["cases"].values() for worker in case["workers"] for run in worker]


def fixed_seconds(run: dict) -> float:
    """A shard run's seconds outside the conv pass."""
    return sum(run["seconds"][step] for step in FIXED_STEPS)


def ran_phrase(ran: list[int]) -> str:
    """Which shards the coordinator's repro ran rather than restored."""
    if not ran:
        return "ran none (every shard restored from the run-cache)"
    return "ran " + ", ".join(f"features@{s}" for s in ran) + " (the others restored from the run-cache)"


def kib(n: float) -> str:
    return f"{n / 1024:,.1f} KiB"


def shard_section(r: dict) -> list[str]:
    """Markdown lines of the section: the case walls, the speed-up, each shard's steps and bytes."""
    one, two = r["cases"]["1 worker"], r["cases"]["2 workers"]
    speedup = one["wall"] / two["wall"]
    runs = shard_runs(r)
    conv_share = median(run["seconds"]["conv"] / run["seconds"]["wall"] for run in runs)
    m, sizes = r["machine"], r["sizes"]
    joined = r["joined"]
    lines = [
        HEADING,
        "",
        f"Produced by `{r['command']}` on {r['date']} in {r['total seconds'] / 60:.1f} min; machine: "
        f"{m['cpu']}, {m['cores usable']} cores, {m['memory']}, SIMD {m['simd']}, load average at start "
        f"{m['load average at start']}. Synthetic photos ({sizes['train_per_class']} per class + "
        f"{sizes['test_count']} test, up to 256 px), `features.image_size: {sizes['image_size']}`, "
        "`features.shards: [0, 1]`, VGG16 with `weights: none`. An S3 server (moto) on loopback; the coordinator's "
        f"checkout ran download, reorganize and split and pushed ({r['coordinator seconds']:.0f} s, not in the "
        "times below). Each worker is a process pinned to one core (`os.sched_setaffinity`, which the dvc and stage "
        "processes it starts inherit) with its own git clone, and runs its shards through "
        "`flows/shard_run.run_shard`, the function the fan-out's Prefect flow runs on a worker: a worktree at the "
        "coordinator's commit and params, `dvc pull` of the shard store, split.csv and classes.json, `dvc repro "
        "--pull --single-item features@<i>`, `dvc push --run-cache features@<i>`. **Not through Prefect**: the "
        "bench calls run_shard in its two pinned processes (started and loaded before the clock starts), so "
        "Prefect's scheduling is not in these times. Each case pushes to its own remote prefix and uses fresh "
        "clones, so each starts from an empty run-cache.",
        "",
        "| case | wall of the conv fan-out | load average at its start |",
        "| --- | ---: | --- |",
        f"| 1 worker on core {one['cores'][0][0]}: shard 0, then shard 1 | {one['wall']:.1f} s | "
        f"{one['load average at start']} |",
        f"| 2 workers on cores {two['cores'][0][0]} and {two['cores'][1][0]}: a shard each, at once | "
        f"{two['wall']:.1f} s | {two['load average at start']} |",
        "",
        f"- Speed-up of 2 workers over 1: **{speedup:.2f}x** (target at least 1.7x): "
        f"{'**met**' if speedup >= 1.7 else '**NOT met**'}.",
        f"- The conv pass is {conv_share:.0%} of a shard run's wall (median over the {len(runs)} shard runs).",
        "- The features the workers pushed are the same in both cases, object for object (every file's md5 and "
        f"each shard folder's listing, {r['pushed feature objects compared']} objects): "
        f"{'**yes**' if r['pushed features identical'] else '**NO**'}.",
        "- After each case, a fresh clone of the coordinator with split's outputs ran `dvc repro --pull "
        "--single-item features@0 features@1`: "
        + "; ".join(f"{case}: {j['seconds']:.1f} s, {ran_phrase(j['ran'])}" for case, j in joined.items())
        + ". Its joined features are byte-identical between the cases "
        f"({r['feature files compared']} files): {'**yes**' if r['features identical'] else '**NO**'}."
        + (
            " A shard it ran was not restored because DVC found its run-cache entry incomplete: the entry names "
            "the stage's `cache: false` metrics (metrics/features/<i>/undecodable.json), which `dvc push "
            "--run-cache features@<i>` does not send (DVC: `Some of the cache files do not exist neither locally "
            "nor on remote`); a later shard with the same metrics bytes then restores from what that run cached."
            if any(j["ran"] for j in joined.values())
            else ""
        ),
        "",
        "Each shard run, seconds (sync + pull: the worktree at the coordinator's commit and `dvc pull` of the inputs; "
        "DVC start: `dvc repro` up to the stage's command, its look in the remote's run-cache included; stage rest: "
        "Python, TensorFlow, the VGG16 build and writing the outputs; conv: photos / photos/s of the stage's "
        "progress lines; finish: DVC caching the outputs and writing dvc.lock, `dvc status --cloud`, `dvc push "
        "--run-cache`, the worktree removed):",
        "",
        "| case | worker (core) | shard | photos | sync + pull | DVC start | stage rest | conv | finish "
        "| fixed (all but conv) | wall |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, case in r["cases"].items():
        for k, worker in enumerate(case["workers"]):
            for run in worker:
                s = run["seconds"]
                lines.append(
                    f"| {name} | {k} ({run['core']}) | {run['shard']} | {run['photos']} | {s['sync_pull']:.2f} | "
                    f"{s['dvc_start']:.2f} | {s['stage_other']:.2f} | {s['conv']:.1f} | {s['finish']:.2f} | "
                    f"{fixed_seconds(run):.1f} | {s['wall']:.1f} |"
                )
    lines += [
        "",
        "Bytes each worker moved: run_shard's own count (pulled: new in the worker's DVC cache after `dvc pull`; "
        "pushed: what `dvc status --cloud` said the remote lacked), and the files new in the worker's cache, "
        "named by what they are (features: the stage's outputs, data/features/<i> and its metrics files; the "
        "run-cache entry is pushed too, outside run_shard's count):",
        "",
        "| case | worker | shard | pulled (run_shard) | pulled, by file | pushed (run_shard) | pushed, by file |",
        "| --- | ---: | ---: | ---: | --- | ---: | --- |",
    ]
    for name, case in r["cases"].items():
        for k, worker in enumerate(case["workers"]):
            for run in worker:
                pulled = ", ".join(f"{what} {kib(n)}" for what, n in run["bytes pulled"].items()) or "nothing"
                pushed = ", ".join(f"{what} {kib(n)}" for what, n in run["bytes pushed"].items()) or "nothing"
                own = run["run_shard"]
                lines.append(
                    f"| {name} | {k} | {run['shard']} | {kib(own['bytes_pulled'])} | {pulled} | "
                    f"{kib(own['bytes_pushed'])} | {pushed} |"
                )
    lines += [
        "",
        "A worker pulls its own shard store, not the others'; with 1 worker, shard 1's run pulls only its store "
        "(split.csv and classes.json are in its cache from shard 0). The time on 1, 4 and 16 GPU workers for the "
        "real 37,500 photos, projected from these figures: [docs/shards.md](../docs/shards.md).",
        "",
    ]
    return lines


def projection_inputs(r: dict) -> dict:
    """The measured inputs of the projection: per-shard fixed seconds, split.csv's and the features' bytes a photo."""
    two = [run for worker in r["cases"]["2 workers"]["workers"] for run in worker]
    one = [run for worker in r["cases"]["1 worker"]["workers"] for run in worker]
    photos = sum(run["photos"] for run in one)
    return {
        "fixed": median(fixed_seconds(run) for run in two),
        "split per photo": r["split.csv bytes"] / photos,
        "features per photo": sum(run["bytes pushed"].get("features", 0) for run in one) / photos,
    }


def projection_rates(issue7: dict) -> dict[str, float]:
    """Conv rates of one worker, photos/s, each with where it comes from."""
    rates = issue7["conv"]["rates"]
    return {
        f"GPU at issue 7's H200 bf16 target, {GPU_TARGET:,}/s (unmeasured)": GPU_TARGET,
        "the same GPU held to the stage's 2 decode threads, "
        f"{issue7['conv']['decode_500x375']:.0f}/s (figure 3, 500x375 photos)": issue7["conv"]["decode_500x375"],
        f"for scale: a 2-core CPU worker like this machine, {rates['stage, backend keras']:.2f}/s (figure 1)": rates[
            "stage, backend keras"
        ],
    }


def projection_lines(r: dict, issue7: dict) -> list[str]:
    """The projection's formula, each input with its source, and the table for 1, 4 and 16 workers."""
    measured = projection_inputs(r)
    lines = [
        "The fan-out on N workers, one shard each, all at once (shards are whole batches, so they differ by at "
        "most one batch; ignored), takes one shard's time:",
        "",
        "    T(N) = F + (P/N * s_photo + P * s_split) / B + (P/N) / R + (P/N) * s_feat / B",
        "",
        "| input | value | where from |",
        "| --- | ---: | --- |",
        f"| P, photos through the conv base | {REAL_PHOTOS:,} | the competition: 23,000 train + 2,000 valid + 12,500 "
        "test |",
        f"| F, fixed seconds per shard | {measured['fixed']:.1f} s | measured (bench/RESULTS.md, shards): median of "
        "the 2-worker shard runs' sync + pull, DVC start, stage rest (Python, TensorFlow, VGG16 build) and finish; "
        "on one CPU core with a loopback remote. A GPU host adds its CUDA start-up (unmeasured) |",
        f"| s_photo, bytes of a photo in a shard store | {PHOTO_BYTES / 1e3:.0f} KB | assumed, not measured: the "
        "competition's archive, under 1 GB for its 37,500 photos, averages nearer 23 KB, so this errs high |",
        f"| s_split, split.csv bytes per photo | {measured['split per photo']:.0f} B | measured: split.csv's size "
        "over the bench's photos; every worker pulls the whole manifest |",
        f"| s_feat, pushed features per photo | {POOL5_BYTES:,} B | pool5 (7x7x512) in float16; measured here "
        f"{measured['features per photo']:,.0f} B a photo, the sample subsets' copies included (60 of 700 photos "
        "here, 250 of 37,500 in the competition) |",
        f"| B, worker <-> bucket | {BANDWIDTH / 1e6:.0f} MB/s | assumed (a 1 Gbit/s link); not measured |",
        "| R, one worker's conv rate | see rows | bench/RESULTS.md; no GPU was measured |",
        "",
        "| R | " + " | ".join(f"N = {n}" for n in WORKERS) + " |",
        "| --- | " + " | ".join("---:" for _ in WORKERS) + " |",
    ]
    for label, rate in projection_rates(issue7).items():
        p = Projection(
            REAL_PHOTOS,
            PHOTO_BYTES,
            measured["split per photo"],
            POOL5_BYTES,
            measured["fixed"],
            BANDWIDTH,
            rate,
        )
        cells = []
        for n in WORKERS:
            terms = shard_seconds(p, n)
            cells.append(
                f"{duration(fan_out_seconds(p, n))} (conv {duration(terms['conv'])}, "
                f"transfer {duration(terms['pull'] + terms['push'])})"
            )
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    join = REAL_PHOTOS * POOL5_BYTES / BANDWIDTH
    lines += [
        "",
        f"After the fan-out the coordinator's `dvc repro --pull` restores every shard: P * s_feat / B = "
        f"{REAL_PHOTOS * POOL5_BYTES / 1e9:.2f} GB at {BANDWIDTH / 1e6:.0f} MB/s, {join:.0f} s, whatever N.",
        "",
    ]
    return lines


def duration(seconds: float) -> str:
    """seconds as a person reads a wait: 0.5 s, 42 s, 9 min 05 s."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    whole = round(seconds)
    return f"{whole} s" if whole < 60 else f"{whole // 60} min {whole % 60:02d} s"


def with_section(text: str, heading: str, section: str) -> str:
    """text with the section that starts at heading replaced by section (up to the next `## `), else appended."""
    if heading not in text:
        return text.rstrip("\n") + "\n\n" + section.rstrip("\n") + "\n"
    before, _, rest = text.partition(heading)
    after = rest[rest.index("\n## ") + 1 :] if "\n## " in rest else ""
    return before + section.rstrip("\n") + "\n" + ("\n" + after if after else "")


def shard_lines(r: dict, issue7: dict | None) -> list[str]:
    """The whole section: the measurements, then the projection where issue 7's rates are at hand."""
    if issue7 is None:
        return shard_section(r)
    return [*shard_section(r), "### Projection to the real 37,500 photos", "", *projection_lines(r, issue7)]


def update_results_md(r: dict, target: Path) -> None:
    """Put the section into target: in place of its previous version, else at the end."""
    text = target.read_text() if target.exists() else ""
    issue7 = target.parent / "results.json"
    lines = shard_lines(r, json.loads(issue7.read_text()) if issue7.exists() else None)
    target.write_text(with_section(text, HEADING, "\n".join(lines)))
