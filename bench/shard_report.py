"""The shard bench's section of bench/RESULTS.md, from bench/shards.json (`python -m bench.shards` writes both)."""

from __future__ import annotations

from pathlib import Path
from statistics import median

HEADING = "## Shards: the conv pass on 1 worker vs 2 workers (issue 16)"
FIXED_STEPS = ("sync", "pull", "dvc_start", "stage_other", "dvc_end", "push")


def shard_runs(r: dict) -> list[dict]:
    """Every shard run of every case, in order."""
    return [run for case in r["cases"].values() for worker in case["workers"] for run in worker]


def fixed_seconds(run: dict) -> float:
    """A shard run's seconds outside the conv pass."""
    return sum(run["seconds"][step] for step in FIXED_STEPS)


def kib(n: float) -> str:
    return f"{n / 1024:,.1f} KiB"


def shard_section(r: dict) -> list[str]:
    """Markdown lines of the section: the case walls, the speed-up, each shard's steps and bytes."""
    one, two = r["cases"]["1 worker"], r["cases"]["2 workers"]
    speedup = one["wall"] / two["wall"]
    runs = shard_runs(r)
    conv_share = median(run["seconds"]["conv"] / run["seconds"]["wall"] for run in runs)
    m, sizes = r["machine"], r["sizes"]
    restore = r["coordinator restore"]
    lines = [
        HEADING,
        "",
        f"Produced by `{r['command']}` on {r['date']} in {r['total seconds'] / 60:.1f} min; machine: "
        f"{m['cpu']}, {m['cores usable']} cores, {m['memory']}, SIMD {m['simd']}, load average at start "
        f"{m['load average at start']}. Synthetic photos ({sizes['train_per_class']} per class + "
        f"{sizes['test_count']} test, up to 256 px), `features.image_size: {sizes['image_size']}`, "
        "`features.shards: [0, 1]`, VGG16 with `weights: none`. An S3 server (moto) on loopback; the coordinator's "
        f"checkout ran download, reorganize and split and pushed ({r['coordinator seconds']:.0f} s). Each worker is "
        "its own git clone, every command of it under `taskset -c <core>`, and runs a shard as the contract says: "
        "`git fetch` + `git checkout` of the coordinator's commit (sync), `dvc pull` of the shard store, split.csv "
        "and classes.json, `dvc repro --pull --single-item features@<i>`, `dvc push --run-cache features@<i>`. "
        "**Not through Prefect**: the bench calls these steps itself in two pinned threads, each step timed alone "
        "(the fan-out's Prefect flow wraps the same steps; its worker function reports only their total). "
        "Each case pushes to its own remote prefix, so each starts from an empty run-cache, with fresh clones.",
        "",
        "| case | wall of the conv fan-out |",
        "| --- | ---: |",
        f"| 1 worker on core 0: shard 0, then shard 1 | {one['wall']:.1f} s |",
        f"| 2 workers on cores 0 and 1: a shard each, at once | {two['wall']:.1f} s |",
        "",
        f"- Speed-up of 2 workers over 1: **{speedup:.2f}x** (target at least 1.7x): "
        f"{'**met**' if speedup >= 1.7 else '**NOT met**'}.",
        f"- Joined features of the two cases byte-identical ({r['feature files compared']} files, every shard's): "
        f"{'**yes**' if r['features identical'] else '**NO**'}.",
        f"- The coordinator's `dvc repro --pull --single-item features@0 features@1` after the 2-worker case: "
        f"{restore['seconds']:.1f} s, ran {', '.join(restore['ran']) or 'no stage'} (both restored from the "
        "run-cache).",
        f"- The conv pass is {conv_share:.0%} of a shard run's wall (median over the {len(runs)} shard runs).",
        "",
        "Each shard run, seconds (sync: git fetch + checkout; pull: `dvc pull` of the inputs; DVC start: `dvc repro` "
        "up to the stage's command, its look in the remote's run-cache included; stage rest: Python, TensorFlow and "
        "the VGG16 build, writing the outputs; DVC end: hashing and caching the outputs, dvc.lock; push: `dvc push "
        "--run-cache`):",
        "",
        "| case | worker (core) | shard | photos | sync | pull | DVC start | stage rest | conv | DVC end | push "
        "| fixed (all but conv) | wall |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, case in r["cases"].items():
        for k, worker in enumerate(case["workers"]):
            for run in worker:
                s = run["seconds"]
                lines.append(
                    f"| {name} | {k} ({run['core']}) | {run['shard']} | {run['photos']} | {s['sync']:.2f} | "
                    f"{s['pull']:.2f} | {s['dvc_start']:.2f} | {s['stage_other']:.2f} | {s['conv']:.1f} | "
                    f"{s['dvc_end']:.2f} | {s['push']:.2f} | {fixed_seconds(run):.1f} | {s['wall']:.1f} |"
                )
    lines += [
        "",
        "Bytes each worker moved (from its DVC cache: files new after `dvc pull`, then files new after the repro, "
        "which `dvc push` sent to an empty remote prefix):",
        "",
        "| case | worker | shard | pulled | pushed |",
        "| --- | ---: | ---: | --- | --- |",
    ]
    for name, case in r["cases"].items():
        for k, worker in enumerate(case["workers"]):
            for run in worker:
                pulled = ", ".join(f"{what} {kib(n)}" for what, n in run["bytes pulled"].items()) or "nothing"
                pushed = ", ".join(f"{what} {kib(n)}" for what, n in run["bytes pushed"].items()) or "nothing"
                lines.append(f"| {name} | {k} | {run['shard']} | {pulled} | {pushed} |")
    lines += [
        "",
        "A worker pulls its own shard store, not the others': with 1 worker, shard 1's run pulls only its store "
        "(split.csv and classes.json are in its cache from shard 0). The time on 1, 4 and 16 GPU workers for the "
        "real 37,500 photos, projected from these figures: [docs/shards.md](../docs/shards.md).",
        "",
    ]
    return lines


def with_section(text: str, heading: str, section: str) -> str:
    """text with the section that starts at heading replaced by section (up to the next `## `), else appended."""
    if heading not in text:
        return text.rstrip("\n") + "\n\n" + section.rstrip("\n") + "\n"
    before, _, rest = text.partition(heading)
    after = rest[rest.index("\n## ") + 1 :] if "\n## " in rest else ""
    return before + section.rstrip("\n") + "\n" + ("\n" + after if after else "")


def update_results_md(r: dict, target: Path) -> None:
    """Put the section into target: in place of its previous version, else at the end."""
    text = target.read_text() if target.exists() else ""
    target.write_text(with_section(text, HEADING, "\n".join(shard_section(r))))
