"""`make bench`: every figure of issue 7 measured side by side in one run; writes bench/results.json and RESULTS.md."""

from __future__ import annotations

import argparse
import gc
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

from bench.conv_pass import STAGE, measure_conv
from bench.dag import dag_at_scale, small_dag
from bench.machine import gemm_flops, machine_details
from bench.memory import features_peak_rss
from bench.photos import all_photos, bench_archive, organized_bench_photos, photo_source
from bench.report import write_report
from bench.workload import HEAD_ROWS, course_batch, course_train_step_seconds, head_seconds, workload_totals

HERE = Path(__file__).resolve().parent
# --quick: every section at a size that only checks the bench runs end to end (7 CPU-minutes; the small DAG on the
# bench's 250 photos at 224x224 is most of it).
QUICK = {"conv_photos": 8, "rounds": 1, "rss_sizes": [8, 16], "scale_photos": 300, "head_rows": 64}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--conv-photos", type=int, default=64, help="photos per candidate per round in figure 1")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; each candidate keeps its best")
    parser.add_argument("--rss-sizes", type=int, nargs=2, default=[32, 160], help="photo counts for figure 4")
    parser.add_argument("--scale-photos", type=int, default=37_500, help="photos for the whole DAG at scale")
    parser.add_argument("--head-rows", type=int, default=HEAD_ROWS, help="cached rows the heads are timed on")
    parser.add_argument("--scratch", type=Path, default=None, help="scratch folder (default: a temporary one)")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="folder for results.json and RESULTS.md (default: bench/; with --quick, a temporary one)",
    )
    quick = ", ".join(f"{name}={value}" for name, value in QUICK.items())
    parser.add_argument("--quick", action="store_true", help=f"a smoke run that checks every section works: {quick}")
    parser.add_argument("--report-only", action="store_true", help="re-render RESULTS.md from bench/results.json")
    args = parser.parse_args()
    if args.report_only:
        write_report(json.loads((HERE / "results.json").read_text()), HERE / "RESULTS.md")
        return
    if args.quick:  # sizes given on the command line win
        vars(args).update({k: v for k, v in QUICK.items() if getattr(args, k) == parser.get_default(k)})
    scratch = args.scratch or Path(tempfile.mkdtemp(prefix="dogscats-bench-"))
    # A smoke run's figures mean nothing: they must not replace the committed ones in bench/.
    out = args.out or (Path(tempfile.mkdtemp(prefix="dogscats-bench-quick-")) if args.quick else HERE)
    out.mkdir(parents=True, exist_ok=True)
    results: dict = {"command": " ".join(["python -m bench.run", *sys.argv[1:]]), "machine": machine_details()}
    started = time.perf_counter()

    def section(name: str, run):
        began = time.perf_counter()
        print(f"bench: {name} ...", flush=True)
        results[name] = run()
        results.setdefault("section seconds", {})[name] = time.perf_counter() - began
        gc.collect()  # each section builds its own VGG16s; let them go before the next
        (out / "results.json").write_text(json.dumps(results, indent=2, default=float) + "\n")

    source = photo_source()
    print(f"bench: photos: {source.description}", flush=True)
    results["photos used"] = source.description
    archive = bench_archive(scratch / "photos", source)
    photos = all_photos(organized_bench_photos(scratch / "photos", archive))[: args.conv_photos]
    section("gemm", lambda: gemm_flops())
    section("conv", lambda: measure_conv(photos, scratch / "conv", args.rounds))

    def workload():
        from tasks.vgg.vgg16 import load_vgg16

        vgg = load_vgg16(STAGE)
        batch = course_batch([p.path for p in photos])
        kinds = ("last_layer", "dense")
        step = {kind: course_train_step_seconds(load_vgg16(STAGE), kind, batch) for kind in kinds}
        heads = head_seconds(vgg, args.head_rows)
        rates = results["conv"]["rates"]
        return {
            "course step batch": len(batch),
            "course step seconds per photo": step,
            "head rows": args.head_rows,
            "head seconds per photo": heads,
            "totals": workload_totals(rates["stage, backend keras"], rates[COURSE], step, heads),
        }

    section("workload", workload)
    section("memory", lambda: [features_peak_rss(scratch / f"rss{n}", n * 2 // 5, n // 5) for n in args.rss_sizes])
    section("dag small", lambda: small_dag(scratch / "dag-small", archive))
    section("dag at scale", lambda: dag_at_scale(scratch / "dag-scale", args.scale_photos))
    results["total seconds"] = time.perf_counter() - started
    (out / "results.json").write_text(json.dumps(results, indent=2, default=float) + "\n")
    write_report(results, out / "RESULTS.md")
    if args.scratch is None:
        shutil.rmtree(scratch, ignore_errors=True)
    print(f"bench: done in {results['total seconds']:.0f} s; see {out / 'RESULTS.md'}", flush=True)


COURSE = "course: flow_from_directory + full VGG16 predict, batch 64"

if __name__ == "__main__":
    main()
