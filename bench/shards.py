"""Issue 16's fan-out bench: the conv pass of `features.shards: [0, 1]` on 1 worker vs 2 workers (one core each),
through an S3 remote on loopback, side by side in one run; writes bench/shards.json and its RESULTS.md section.

Each worker is a process pinned to its core (os.sched_setaffinity; the dvc and stage processes inherit it) with its
own git checkout, and runs its shards through flows/shard_run.run_shard, the function the fan-out's Prefect flow runs
on a worker: a worktree at the coordinator's commit and params, `dvc pull` of the shard's inputs, `dvc repro --pull
--single-item features@<i>`, `dvc push --run-cache`. Prefect itself is left out: its start and scheduling are not
what this measures.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import multiprocessing
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import yaml

from bench.machine import machine_details
from bench.shard_figures import SUBSET_DONE, cache_md5, labelled_bytes, shard_times
from bench.shard_report import update_results_md
from bench.workspace import bench_params, dvc, make_workspace, merged, run_tool
from tasks.core.paths import DVC_FILE, load_paths

HERE = Path(__file__).resolve().parent
BUCKET = "bench-shards"
SHARDS = [0, 1]
CASES = {"1 worker": [[0, 1]], "2 workers": [[0], [1]]}  # each worker's shards, in turn; worker k on core k
STAGE_COMMAND = "python -m tasks.features {shard}"  # dvc.yaml's cmd for features@<shard>, which DVC echoes
# Sizes where the conv pass is most of a shard's time and the whole bench takes about 5 minutes on 2 idle cores.
DEFAULTS = {"train_per_class": 250, "test_count": 200, "image_size": 224}


def shard_params(train_per_class: int, test_count: int, image_size: int) -> dict:
    """params.yaml for the bench: synthetic photos, two shards, VGG16 with random weights at image_size."""
    return bench_params(
        merged(
            {"split": {"seed": 1}, "features": {"batch_size": 16}},
            {
                "download": {
                    "source": "synthetic",
                    "synthetic": {"seed": 0, "train_per_class": train_per_class, "test_count": test_count},
                },
                "split": {"valid_size": 40, "sample_train_size": 40, "sample_valid_size": 20},
                "features": {"shards": SHARDS, "image_size": image_size, "weights": "none"},
            },
        )
    )


@contextmanager
def loopback_s3(home: Path):
    """A moto S3 server on 127.0.0.1 with an empty bucket; yields its endpoint. Credentials only in the environment."""
    import boto3
    from moto.server import ThreadedMotoServer

    saved = dict(os.environ)
    home.mkdir(parents=True, exist_ok=True)
    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench-secret",
            "AWS_DEFAULT_REGION": "us-east-1",
            # boto3's usual chain reads these files: pointed away, so no real profile on this machine leaks in
            "AWS_CONFIG_FILE": str(home / "config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(home / "credentials"),
            "PYTHONUNBUFFERED": "1",  # DVC's lines arrive when written: the bench times the repro by them
        }
    )
    os.environ.pop("AWS_PROFILE", None)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=BUCKET)
    try:
        yield endpoint
    finally:
        server.stop()
        os.environ.clear()
        os.environ.update(saved)


def cache_files(cache: Path) -> dict[str, int]:
    """Every file in a DVC cache, the run-cache's included: path under the cache -> bytes."""
    return {p.relative_to(cache).as_posix(): p.stat().st_size for p in cache.rglob("*") if p.is_file()}


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def coordinator(root: Path, params: dict, endpoint: str) -> str:
    """The coordinator's checkout: download, reorganize and split run and committed; returns the commit's hash."""
    make_workspace(root, params)
    for case in CASES:  # one remote prefix per case, so each starts from an empty run-cache
        name = remote_name(case)
        dvc(root, "remote", "add", name, f"s3://{BUCKET}/{name}")
        dvc(root, "remote", "modify", name, "endpointurl", endpoint)
    dvc(root, "repro", "split")
    run_tool(["git", "add", "-A"], root)
    run_tool(["git", "commit", "-qm", "coordinator: split done"], root)
    for case in CASES:
        dvc(root, "push", "-r", remote_name(case))
    return run_tool(["git", "rev-parse", "HEAD"], root).stdout.strip()


def input_names(root: Path) -> dict[str, str]:
    """md5 -> what, for the shard inputs the coordinator pushed: each shard store, its folder's listing, split.csv,
    classes.json."""
    paths = load_paths(root / DVC_FILE)
    names = {md5(root / paths.split): "split.csv", md5(root / paths.classes): "classes.json"}
    names |= {md5(store): "shard store" for store in (root / paths.shards).glob("*.zip")}
    lock = yaml.safe_load((root / "dvc.lock").read_text())
    for out in lock["stages"]["split"]["outs"]:
        if out["path"] == paths.shards:
            names[out["md5"]] = "shard stores' listing (.dir)"
    return names


def remote_name(case: str) -> str:
    return "case-" + case.replace(" ", "-")


def worker_checkout(coordinator_root: Path, root: Path, case: str) -> Path:
    """A worker's own checkout (a clone of the coordinator, as a worker host has), its default remote the case's."""
    run_tool(["git", "clone", "-q", str(coordinator_root), str(root)], root.parent)
    dvc(root, "remote", "default", "--local", remote_name(case))
    return root


def pin(core: int) -> None:
    """Run this worker process, and every process it starts, on one core; load what a waiting worker has loaded."""
    os.sched_setaffinity(0, {core})
    import dvc.repo  # noqa: F401

    import flows.shard_run  # noqa: F401
    from flows.dvc_stages import stage_environment

    stage_environment()  # loads Prefect's runtime module, as a worker's process has


def ready() -> list[int]:
    return sorted(os.sched_getaffinity(0))


def arrivals(lines: list[tuple[float, str]], began: float) -> Callable[[str], None]:
    """A line callback that keeps each line with its second since began."""
    return lambda line: lines.append((time.perf_counter() - began, line))


def run_shards(checkout: Path, commit: str, params: bytes, lock: bytes, shards: list[int], names: dict) -> list[dict]:
    """In a pinned worker process: its shards in turn through run_shard, each with its lines' arrival times."""
    from flows.shard_run import run_shard
    from tasks.features import stage_name

    cache = checkout / ".dvc" / "cache"
    reports = []
    for shard in shards:
        stage, lines = stage_name(shard), []
        before = cache_files(cache)
        began = time.perf_counter()
        report = run_shard(
            checkout,
            commit,
            params,
            stage,
            lock,
            on_line=arrivals(lines, began),
        )
        total = time.perf_counter() - began
        new = {k: v for k, v in cache_files(cache).items() if k not in before}
        moved = labelled_bytes(new, names, "features")
        outputs = sorted(cache_md5(k) for k in new if not k.startswith("runs/") and cache_md5(k) not in names)
        inputs = set(names.values())
        reports.append(
            {
                "shard": shard,
                "core": ready()[0],
                "seconds": {
                    **shard_times(lines, total, stage, STAGE_COMMAND.format(shard=shard))._asdict(),
                    "wall": total,
                },
                "run_shard": {
                    "bytes_pulled": report.bytes_pulled,
                    "bytes_pushed": report.bytes_pushed,
                    "computed": report.computed,
                    "seconds": report.seconds,
                },
                "bytes pulled": {k: v for k, v in moved.items() if k in inputs},
                "bytes pushed": {k: v for k, v in moved.items() if k not in inputs},
                "photos": photo_count(lines, stage),
                "features objects": outputs,  # md5s of the pushed features (files and listing): their content
            }
        )
    return reports


def photo_count(lines: list[tuple[float, str]], stage: str) -> int:
    """Photos the shard's conv pass ran on: the totals of its subsets' last progress lines."""
    prefix = f"{stage}: "
    done = [SUBSET_DONE.match(line.removeprefix(prefix)) for _, line in lines if line.startswith(prefix)]
    return sum(int(m[3].replace(",", "")) for m in done if m and m[2] == m[3])


def run_case(case: str, scratch: Path, root: Path, commit: str, names: dict) -> dict:
    """All workers of case at once (worker k a process on core k), each running its shards in turn."""
    plans = CASES[case]
    checkouts = [worker_checkout(root, scratch / f"{remote_name(case)}-{k}", case) for k in range(len(plans))]
    params, lock = (root / "params.yaml").read_bytes(), (root / "dvc.lock").read_bytes()
    spawn = multiprocessing.get_context("spawn")
    pools = [ProcessPoolExecutor(1, mp_context=spawn, initializer=pin, initargs=(k,)) for k in range(len(plans))]
    try:
        cores = [pool.submit(ready).result() for pool in pools]  # started, pinned and loaded before the clock starts
        load = " ".join(f"{x:.2f}" for x in os.getloadavg())
        began = time.perf_counter()
        jobs = [
            pool.submit(run_shards, checkouts[k], commit, params, lock, plans[k], names) for k, pool in enumerate(pools)
        ]
        workers = [job.result() for job in jobs]
        wall = time.perf_counter() - began
    finally:
        for pool in pools:
            pool.shutdown()
    return {"wall": wall, "cores": cores, "load average at start": load, "workers": workers}


def joined_features(coordinator_root: Path, root: Path, case: str) -> dict:
    """The coordinator's side after the fan-out, in a fresh clone of it with split's outputs (so no features come
    from its own cache):
    `dvc repro --pull` of every shard's stage, restored from the case's run-cache with none run, and the md5 of every
    file of the joined features."""
    worker_checkout(coordinator_root, root, case)
    dvc(root, "pull", "split")  # what the coordinator has: split's outputs, the shards' inputs
    began = time.perf_counter()
    out = dvc(root, "repro", "--pull", "--single-item", *[f"features@{s}" for s in SHARDS])
    features = root / load_paths(root / DVC_FILE).features
    digests = {f.relative_to(features).as_posix(): md5(f) for f in sorted(features.rglob("*")) if f.is_file()}
    return {
        "seconds": time.perf_counter() - began,
        # DVC echoes a stage's command only when it runs it; a run-cache restore says "is cached - skipping run"
        "ran": [s for s in SHARDS if f"> {STAGE_COMMAND.format(shard=s)}" in out.stdout.splitlines()],
        "output": out.stdout + out.stderr,
        "digests": digests,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name, value in DEFAULTS.items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=int, default=value)
    parser.add_argument("--scratch", type=Path, default=None, help="scratch folder (default: a temporary one)")
    parser.add_argument("--out", type=Path, default=HERE, help="folder for shards.json and RESULTS.md")
    parser.add_argument("--report-only", action="store_true", help="re-render the RESULTS.md section from shards.json")
    args = parser.parse_args()
    if args.report_only:
        update_results_md(json.loads((args.out / "shards.json").read_text()), args.out / "RESULTS.md")
        return
    if len(os.sched_getaffinity(0)) < 2:
        sys.exit("bench.shards: needs 2 cores to run 2 workers at once")
    scratch = args.scratch or Path(tempfile.mkdtemp(prefix="dogscats-bench-shards-"))
    started = time.perf_counter()
    results: dict = {
        "command": " ".join(["python -m bench.shards", *sys.argv[1:]]),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": machine_details(),
        "sizes": {k: getattr(args, k) for k in DEFAULTS},
    }
    params = shard_params(args.train_per_class, args.test_count, args.image_size)
    with loopback_s3(scratch / "aws") as endpoint:
        root = scratch / "coordinator"
        began = time.perf_counter()
        commit = coordinator(root, params, endpoint)
        results["coordinator seconds"] = time.perf_counter() - began
        results["split.csv bytes"] = (root / load_paths(root / DVC_FILE).split).stat().st_size
        names = input_names(root)
        results["cases"], joins = {}, {}
        for case in CASES:
            print(f"bench: {case} ...", flush=True)
            results["cases"][case] = run_case(case, scratch, root, commit, names)
            joins[case] = joined_features(root, scratch / f"join-{remote_name(case)}", case)
    pushed = [
        sorted({md5 for worker in case["workers"] for run in worker for md5 in run.pop("features objects")})
        for case in results["cases"].values()
    ]
    results["pushed features identical"] = pushed[0] == pushed[1]
    results["pushed feature objects compared"] = len(pushed[0])
    digests = [join.pop("digests") for join in joins.values()]
    results["joined"] = joins
    results["features identical"] = digests[0] == digests[1]
    results["feature files compared"] = len(digests[0])
    results["total seconds"] = time.perf_counter() - started
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "shards.json").write_text(json.dumps(results, indent=2) + "\n")
    update_results_md(results, args.out / "RESULTS.md")
    if args.scratch is None:
        shutil.rmtree(scratch, ignore_errors=True)
    print(f"bench: done in {results['total seconds']:.0f} s; see {args.out / 'RESULTS.md'}", flush=True)


if __name__ == "__main__":
    main()
