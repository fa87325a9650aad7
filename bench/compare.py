#!/usr/bin/env python3
"""Runs metallic_bench and the PyTorch peers in bench/torch/*.py, joins them and prints a markdown table.

usage: python3 bench/compare.py [build/bench/metallic_bench] [--filter SUBSTRING] [--modules a,b]

Each bench/torch/<name>.py defines run(timer) returning a list of {"op", "shape", "dtype", "ms"}
(optionally run(timer, filter) to skip work); timer(fn) is the CUDA-event median of 30 calls after 5 warm-ups,
each timed call preceded by a read of 256 MiB, as on the C++ side (Harness::time_ms). Rows join on (op, shape,
dtype). When $OUT is set, the raw JSON of both sides and the table are written there.
"""
import argparse
import importlib.util
import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def make_timer():
    import torch

    flush_buf = torch.zeros(64 << 20, dtype=torch.int32, device="cuda")

    def timer(fn, iters=30, warmup=5):
        # Read 256 MiB before each timed call (outside the events), like Harness::time_ms: the GPU is still
        # busy when the call is enqueued, so Python's and the dispatcher's launch path stay off the clock,
        # and L2 holds clean lines only, so the call pays no write-back of an earlier call's output.
        for _ in range(warmup):
            fn()
        torch.cuda.synchronize()
        start = torch.cuda.Event(enable_timing=True)
        stop = torch.cuda.Event(enable_timing=True)
        times = []
        for i in range(iters):
            flush_buf.sum()
            start.record()
            fn()
            stop.record()
            stop.synchronize()
            times.append(start.elapsed_time(stop))
        times.sort()
        n = len(times)
        return times[n // 2] if n % 2 else 0.5 * (times[n // 2 - 1] + times[n // 2])

    return timer


def run_ours(binary, filt):
    cmd = [binary] + (["--filter", filt] if filt else [])
    print("$ " + " ".join(cmd), file=sys.stderr)
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
    calib, rows = None, []
    for line in proc.stdout.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        rec = json.loads(line)
        if rec.get("calibration"):
            calib = rec
        else:
            rows.append(rec)
    if proc.returncode != 0:
        print(f"warning: {binary} exited with {proc.returncode}", file=sys.stderr)
    return calib, rows


def run_torch(filt, modules):
    try:
        timer = make_timer()
    except Exception as e:  # no torch: our side alone
        print(f"warning: torch unavailable ({e})", file=sys.stderr)
        return []
    rows = []
    for path in sorted((HERE / "torch").glob("*.py")):
        if path.name.startswith("_"):
            continue
        if modules and path.stem not in modules:
            continue
        spec = importlib.util.spec_from_file_location(f"metallic_bench_torch_{path.stem}", path)
        mod = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(mod)
            nparams = len(inspect.signature(mod.run).parameters)
            got = mod.run(timer, filt) if nparams >= 2 else mod.run(timer)
            rows.extend(got)
        except Exception as e:
            print(f"warning: torch module {path.name} failed: {e!r}", file=sys.stderr)
        try:
            import torch
            torch.cuda.empty_cache()
        except Exception:
            pass
    return rows


def fmt(v, spec):
    return "" if v is None else format(v, spec)


def table(calib, ours, theirs):
    key = lambda r: (r["op"], r["shape"], r["dtype"])
    torch_by_key = {key(r): r for r in theirs}
    lines = []
    if calib:
        lines.append(f"Device: {calib.get('device')}; copy bandwidth {calib['copy_GBps']:.0f} GB/s "
                     f"(read + write), cuBLAS bf16 GEMM {calib['gemm_TFLOPs']:.0f} TFLOP/s")
        lines.append("")
    lines.append("| op | shape | dtype | ours ms | torch ms | speedup | ours GB/s | frac of copy | TFLOP/s |")
    lines.append("|---|---|---|---|---|---|---|---|---|")
    seen = set()
    for r in ours:
        t = torch_by_key.get(key(r))
        seen.add(key(r))
        tms = t["ms"] if t and t.get("ms") is not None else None
        speed = f"{tms / r['ms']:.2f}x" if tms and r.get("ms") else ""
        lines.append(f"| {r['op']} | {r['shape']} | {r['dtype']} | {fmt(r.get('ms'), '.4f')} | {fmt(tms, '.4f')} | "
                     f"{speed} | {fmt(r.get('GBps'), '.0f')} | {fmt(r.get('frac_copy'), '.2f')} | "
                     f"{fmt(r.get('TFLOPs'), '.1f')} |")
    for t in theirs:
        if key(t) not in seen:
            lines.append(f"| {t['op']} | {t['shape']} | {t['dtype']} |  | {fmt(t.get('ms'), '.4f')} |  |  |  |  |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("binary", nargs="?", default="build/bench/metallic_bench")
    ap.add_argument("--filter", default="", help="run only our cases whose name contains this")
    ap.add_argument("--modules", default="", help="comma-separated bench/torch module names (default: all)")
    args = ap.parse_args()
    modules = {m for m in args.modules.split(",") if m}

    calib, ours = run_ours(args.binary, args.filter)
    theirs = run_torch(args.filter, modules)
    if args.filter:
        # Keep torch rows that pair with one of ours, or whose op names the filter.
        keys = {(r["op"], r["shape"], r["dtype"]) for r in ours}
        theirs = [t for t in theirs if (t["op"], t["shape"], t["dtype"]) in keys or args.filter in t["op"]]
    md = table(calib, ours, theirs)
    print(md)
    out = os.environ.get("OUT")
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        Path(out, "bench_ours.json").write_text(json.dumps({"calibration": calib, "rows": ours}, indent=1))
        Path(out, "bench_torch.json").write_text(json.dumps(theirs, indent=1))
        Path(out, "bench_table.md").write_text(md + "\n")


if __name__ == "__main__":
    main()
