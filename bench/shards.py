"""Issue 16's fan-out bench: the conv pass of `features.shards: [0, 1]` on 1 worker vs 2 workers (one core each),
through an S3 remote on loopback, side by side in one run; writes bench/shards.json and its RESULTS.md section.

Each worker is its own git checkout and runs a shard as issue 16's contract says a shard worker does: bring the
checkout to the coordinator's commit, `dvc pull` the shard's inputs, `dvc repro --pull --single-item features@<i>`,
`dvc push --run-cache features@<i>`, each step timed alone (the worker function on the fan-out branch reports only
its total). Every command of a worker runs under `taskset -c <core>`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

from bench.machine import machine_details
from bench.shard_figures import labelled_bytes, repro_times
from bench.shard_report import update_results_md
from bench.workspace import bench_params, dvc, make_workspace, merged, run_tool, tool_env
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


def timed(args: list[str], cwd: Path) -> float:
    """Wall seconds of a command that must succeed."""
    began = time.perf_counter()
    run_tool(args, cwd)
    return time.perf_counter() - began


def streamed(args: list[str], cwd: Path) -> tuple[float, list[tuple[float, str]]]:
    """Wall seconds of a command that must succeed, and each line of its output with the second it arrived."""
    began = time.perf_counter()
    proc = subprocess.Popen(args, cwd=cwd, env=tool_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    lines = [(time.perf_counter() - began, line.rstrip("\n")) for line in proc.stdout]
    if proc.wait() != 0:
        raise RuntimeError(f"{args} failed in {cwd}:\n" + "\n".join(line for _, line in lines))
    return time.perf_counter() - began, lines


def cache_files(checkout: Path) -> dict[str, int]:
    """Every file in the checkout's DVC cache: path under the cache -> bytes."""
    cache = checkout / ".dvc" / "cache"
    return {p.relative_to(cache).as_posix(): p.stat().st_size for p in cache.rglob("*") if p.is_file()}


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def coordinator(root: Path, params: dict, endpoint: str) -> str:
    """The coordinator's checkout: download, reorganize and split run and committed; returns the commit's hash."""
    make_workspace(root, params)
    for case in CASES:  # one remote per case, so each starts from an empty run-cache
        name = remote_name(case)
        dvc(root, "remote", "add", name, f"s3://{BUCKET}/{name}")
        dvc(root, "remote", "modify", name, "endpointurl", endpoint)
    dvc(root, "repro", "split")
    run_tool(["git", "add", "-A"], root)
    run_tool(["git", "commit", "-qm", "coordinator: split done"], root)
    for case in CASES:
        dvc(root, "push", "-r", remote_name(case))
    return run_tool(["git", "rev-parse", "HEAD"], root).stdout.strip()


def remote_name(case: str) -> str:
    return "case-" + case.replace(" ", "-")


def worker_checkout(coordinator_root: Path, root: Path, case: str) -> Path:
    """A worker's own checkout (a clone of the coordinator, as a worker host has), its default remote the case's."""
    run_tool(["git", "clone", "-q", str(coordinator_root), str(root)], root.parent)
    dvc(root, "remote", "default", "--local", remote_name(case))
    return root


def run_shard(checkout: Path, coordinator_root: Path, commit: str, shard: int, core: int) -> dict:
    """One shard on one worker pinned to core: sync, pull its inputs, reproduce its stage, push it; each step timed."""
    pin = ["taskset", "-c", str(core)]
    paths = load_paths(checkout / DVC_FILE)
    py = [*pin, sys.executable, "-m", "dvc"]
    before = cache_files(checkout)
    began = time.perf_counter()
    sync = timed([*pin, "git", "fetch", "-q", str(coordinator_root), "HEAD"], checkout)
    sync += timed([*pin, "git", "checkout", "-q", "--detach", commit], checkout)
    inputs = [f"{paths.shards}/{shard}.zip", paths.split, paths.classes]
    pull = timed([*py, "pull", *inputs], checkout)
    pulled = cache_files(checkout)
    repro_total, lines = streamed([*py, "repro", "--pull", "--single-item", f"features@{shard}"], checkout)
    computed = cache_files(checkout)
    push = timed([*py, "push", "--run-cache", f"features@{shard}"], checkout)
    wall = time.perf_counter() - began
    names = {
        md5(checkout / p): what for p, what in zip(inputs, ("shard store", "split.csv", "classes.json"), strict=True)
    }
    features = checkout / paths.features / str(shard)
    names |= {md5(f): "features" for f in features.rglob("*") if f.is_file()}
    split = repro_times(lines, repro_total, STAGE_COMMAND.format(shard=shard))
    return {
        "shard": shard,
        "core": core,
        "seconds": {"sync": sync, "pull": pull, **split._asdict(), "push": push, "wall": wall},
        "bytes pulled": labelled_bytes({k: v for k, v in pulled.items() if k not in before}, names),
        "bytes pushed": labelled_bytes({k: v for k, v in computed.items() if k not in pulled}, names),
        "photos": photo_count(features),
    }


def photo_count(features: Path) -> int:
    """Photos a shard's conv pass ran on: rows of its train, valid and test indexes."""
    return sum(len((features / s / "index.csv").read_text().splitlines()) - 1 for s in ("train", "valid", "test"))


def feature_digests(checkouts: list[Path], features: str) -> dict[str, str]:
    """md5 of every file of every shard's features in the checkouts: relative path -> md5."""
    out = {}
    for checkout in checkouts:
        root = checkout / features
        out |= {f.relative_to(root).as_posix(): md5(f) for f in sorted(root.rglob("*")) if f.is_file()}
    return out


def run_case(case: str, scratch: Path, coordinator_root: Path, commit: str) -> dict:
    """All workers of case at once (worker k on core k), each running its shards in turn; wall of the whole fan-out."""
    plans = CASES[case]
    checkouts = [
        worker_checkout(coordinator_root, scratch / f"{remote_name(case)}-{k}", case) for k in range(len(plans))
    ]

    def worker(k: int) -> list[dict]:
        return [run_shard(checkouts[k], coordinator_root, commit, shard, k) for shard in plans[k]]

    began = time.perf_counter()
    with ThreadPoolExecutor(len(plans)) as pool:
        reports = list(pool.map(worker, range(len(plans))))
    wall = time.perf_counter() - began
    features = load_paths(coordinator_root / DVC_FILE).features
    return {"wall": wall, "workers": reports, "digests": feature_digests(checkouts, features)}


def coordinator_restores(coordinator_root: Path, case: str) -> dict:
    """The coordinator after the fan-out: every shard's stage restored from the case's run-cache, none run."""
    dvc(coordinator_root, "remote", "default", "--local", remote_name(case))
    targets = [f"features@{s}" for s in SHARDS]
    began = time.perf_counter()
    out = dvc(coordinator_root, "repro", "--pull", "--single-item", *targets)
    ran = [line.split("'")[1] for line in out.stdout.splitlines() if line.startswith("Running stage '")]
    return {"seconds": time.perf_counter() - began, "ran": ran}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name, value in DEFAULTS.items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=int, default=value)
    parser.add_argument("--scratch", type=Path, default=None, help="scratch folder (default: a temporary one)")
    parser.add_argument("--out", type=Path, default=HERE, help="folder for shards.json and RESULTS.md")
    args = parser.parse_args()
    if shutil.which("taskset") is None:
        sys.exit("bench.shards: needs taskset (util-linux) to pin each worker to its core")
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
        split_bytes = (root / load_paths(root / DVC_FILE).split).stat().st_size
        results["split.csv bytes"] = split_bytes
        for case in CASES:
            print(f"bench: {case} ...", flush=True)
            results.setdefault("cases", {})[case] = run_case(case, scratch, root, commit)
        results["coordinator restore"] = coordinator_restores(root, "2 workers")
    digests = [c.pop("digests") for c in results["cases"].values()]
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
