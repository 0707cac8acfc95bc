#!/usr/bin/env python3
"""Linked-call benchmark driver for hearth (stdlib only, Python 3.11).

A workload's service (guests/call-bench-service) imports `hearth:bench/calls`;
hearth satisfies the import with a component of the same workload
(guests/call-bench-callee) and runs every call on a fresh instance of it. The
service times `CALLS` calls of `noop()`, of `echo` with 1 KiB each way and of
`echo-sample` with a record of six scalars each way (after 500 warm-up calls
of each) with `std::time::Instant`, prints one
`bench ...` line per kind and `bench done`. This driver runs hearth pinned to
CPU 1 (`taskset -c 1`, `--workers 1`), reads those lines from hearth's JSON
log, and reports calls/s and µs per call.

For reference (published by wasmCloud, not measured here): about 9 µs per warm
linked call, about 44 µs when the call includes instantiating the callee.

Usually run through `bench/calls`, which builds what is needed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import time
from pathlib import Path

from common import (
    HOST,
    SERVER_CPU,
    BenchError,
    Process,
    log,
    pinned,
    raise_if_missing,
    run_driver,
    set_log_prefix,
    write_results,
)

BENCH_DIR = Path(__file__).resolve().parent.parent
REPO_ROOT = BENCH_DIR.parent

DONE_TIMEOUT_S = 120.0
DEFAULT_CALLS = 20_000
WARMUP_CALLS = 500  # hard-coded in guests/call-bench-service
ECHO_BYTES = 1024
KINDS = ("noop", "echo1k", "record")
LABELS = {"noop": "noop()", "echo1k": "echo(1 KiB)", "record": "echo(record)"}

# wasmCloud's published figures, cited for comparison; not measured by this benchmark.
WASMCLOUD_WARM_US = 9.0
WASMCLOUD_INSTANTIATE_US = 44.0

LINE_RE = re.compile(
    r"^bench (?P<kind>\S+) calls=(?P<calls>\d+) secs=(?P<secs>[\d.eE+-]+) "
    r"per_sec=(?P<per_sec>[\d.eE+-]+|inf) us_per_call=(?P<us>[\d.eE+-]+)\s*$"
)

set_log_prefix("calls-bench")


def write_manifest(args: argparse.Namespace, path: Path) -> Path:
    callee = (args.guests_dir / "call_bench_callee.wasm").resolve()
    service = (args.guests_dir / "call_bench_service.wasm").resolve()
    path.write_text(
        "apiVersion: hearth.dev/v1alpha1\n"
        "kind: Workload\n"
        "metadata:\n"
        "  name: call-bench\n"
        "spec:\n"
        "  components:\n"
        "    - name: callee\n"
        f"      image: {json.dumps(str(callee))}\n"
        "      limits: { maxConcurrency: 16 }\n"
        "  service:\n"
        f"    image: {json.dumps(str(service))}\n"
        f'    env: {{ CALLS: "{args.calls}" }}\n'
        "    restart: { policy: never }\n"
    )
    return path


def guest_stdout(text: str) -> list[str]:
    """The guest stdout lines in hearth's JSON log."""
    lines = []
    for raw in text.splitlines():
        raw = raw.strip()
        if not raw.startswith("{"):
            continue
        try:
            entry = json.loads(raw)
        except ValueError:
            continue
        fields = entry.get("fields") if isinstance(entry.get("fields"), dict) else {}
        stream = entry.get("stream", fields.get("stream"))
        message = entry.get("message", fields.get("message"))
        if stream == "stdout" and isinstance(message, str):
            lines.extend(m.strip() for m in message.splitlines())
    return lines


def run_once(args: argparse.Namespace, tmp: Path) -> dict:
    manifest = write_manifest(args, tmp / "calls.yaml")
    argv = [
        str(args.hearth), "run", "--workers", "1", "--http", f"{HOST}:0", "--log-format", "json",
        "--cache-dir", str(args.cache_dir.resolve()), str(manifest),
    ]  # fmt: skip
    log(f"running hearth with CALLS={args.calls} (timeout {args.timeout:g}s)")
    h = Process("hearth", pinned(argv), tmp / "hearth.log", {"RUST_LOG": "info"})
    started = time.monotonic()
    try:
        while True:
            lines = guest_stdout(h.log_text())
            if "bench done" in lines:
                break
            if h.proc.poll() is not None:
                raise BenchError(f"hearth exited with status {h.proc.returncode} first; its output:\n{h.log_tail()}")
            if time.monotonic() - started > args.timeout:
                raise BenchError(f"no `bench done` after {args.timeout:g}s; hearth's output:\n{h.log_tail()}")
            time.sleep(0.05)
        wall = time.monotonic() - started
    finally:
        h.kill()
    results = {}
    for line in lines:
        m = LINE_RE.match(line)
        if m and m["kind"] in KINDS:
            calls, secs = int(m["calls"]), float(m["secs"])
            results[m["kind"]] = {
                "calls": calls,
                "secs": secs,
                "per_sec": calls / secs if secs > 0 else float(m["per_sec"]),
                "us_per_call": secs * 1e6 / calls,
                "line": line,
            }
    missing = [k for k in KINDS if k not in results]
    if missing:
        raise BenchError(f"no `bench {'/'.join(missing)}` line in the guest's output; its lines:\n" + "\n".join(lines))
    results["wall_s"] = round(wall, 3)
    return results


def print_report(args: argparse.Namespace, r: dict) -> None:
    print()
    print(f"Linked calls, service -> component (fresh instance per call), {args.calls} calls each after "
          f"{WARMUP_CALLS} warm-up, hearth --workers 1 on CPU {SERVER_CPU}")  # fmt: skip
    print(f"  {'call':<14}{'calls/s':>12}{'µs/call':>10}{'vs 9 µs':>10}{'vs 44 µs':>10}")
    for kind in KINDS:
        k = r[kind]
        print(
            f"  {LABELS[kind]:<14}{k['per_sec']:>12,.0f}{k['us_per_call']:>10.2f}"
            f"{k['us_per_call'] / WASMCLOUD_WARM_US:>9.2f}x{k['us_per_call'] / WASMCLOUD_INSTANTIATE_US:>9.2f}x"
        )
    print()
    print("Reference (wasmCloud's published figures, not measured here):")
    print(f"  ~{WASMCLOUD_WARM_US:g} µs per warm linked call; ~{WASMCLOUD_INSTANTIATE_US:g} µs including instantiation.")
    noop = r["noop"]["us_per_call"]
    if noop <= WASMCLOUD_WARM_US:
        verdict = f"below the ~{WASMCLOUD_WARM_US:g} µs warm figure"
    elif noop <= WASMCLOUD_INSTANTIATE_US:
        verdict = f"between the ~{WASMCLOUD_WARM_US:g} µs warm and ~{WASMCLOUD_INSTANTIATE_US:g} µs instantiating figures"
    else:
        verdict = f"above the ~{WASMCLOUD_INSTANTIATE_US:g} µs instantiating figure"
    print(f"  hearth's noop call ({noop:.2f} µs, a fresh instance each time) is {verdict}.")
    print("  Different machines and setups: read the ratios as orders of magnitude, not a contest.")
    print()


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--hearth", type=Path, default=REPO_ROOT / "target/release/hearth", help="hearth binary")
    p.add_argument(
        "--guests-dir",
        type=Path,
        default=REPO_ROOT / "guests/target/wasm32-wasip2/release",
        help="directory with the built guest components",
    )
    p.add_argument("--cache-dir", type=Path, default=BENCH_DIR / ".cache/hearth-cache", help="hearth --cache-dir")
    p.add_argument("--calls", type=int, default=DEFAULT_CALLS, help=f"timed calls of each kind (default {DEFAULT_CALLS})")
    p.add_argument("--timeout", type=float, default=DONE_TIMEOUT_S, help="seconds to wait for `bench done` (default 120)")
    p.add_argument("--log-dir", type=Path, default=None, help="keep hearth's log and the manifest here (default: a temp dir)")
    p.add_argument(
        "--output", type=Path, default=BENCH_DIR / "results/calls-latest.json", help="where to write the JSON results"
    )
    args = p.parse_args(argv)
    if args.calls < 1:
        p.error("--calls must be positive")
    if args.timeout <= 0:
        p.error("--timeout must be positive")
    return args


def check_inputs(args: argparse.Namespace) -> None:
    missing = []
    if shutil.which("taskset") is None:
        missing.append("`taskset` not found on PATH")
    if not os.access(args.hearth, os.X_OK):
        missing.append(f"hearth not found at {args.hearth} (cargo build --release -p hearth-cli)")
    for name in ("call_bench_callee.wasm", "call_bench_service.wasm"):
        if not (args.guests_dir / name).is_file():
            missing.append(f"{name} not found in {args.guests_dir} (cd guests && cargo build --release)")
    if (os.cpu_count() or 1) < 2:
        missing.append("pinning to CPU 1 needs at least 2 CPUs")
    raise_if_missing(missing)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    plan = f"calls={args.calls} per kind (+{WARMUP_CALLS} warm-up), echo payload {ECHO_BYTES} B"
    got = run_driver(args, check_inputs, plan, "hearth-calls-bench-", run_once)
    if isinstance(got, int):
        return got
    info, r = got
    log(f"done in {r['wall_s']:.1f}s (hearth start to `bench done`)")

    print_report(args, r)
    result = {
        "machine": info,
        "config": {
            "server_cpu": int(SERVER_CPU),
            "hearth_workers": 1,
            "calls": args.calls,
            "warmup_calls": WARMUP_CALLS,
            "echo_bytes": ECHO_BYTES,
            "callee_limits": {"maxConcurrency": 16},
            "instance_per_call": "fresh",
        },
        "noop": r["noop"],
        "echo1k": r["echo1k"],
        "record": r["record"],
        "wall_s": r["wall_s"],
        "reference": {
            "source": "wasmCloud published figures (cited, not measured here)",
            "wasmcloud_warm_linked_call_us": WASMCLOUD_WARM_US,
            "wasmcloud_with_instantiation_us": WASMCLOUD_INSTANTIATE_US,
        },
        "ratios": {
            f"{kind}_vs_warm": r[kind]["us_per_call"] / WASMCLOUD_WARM_US for kind in KINDS
        }
        | {f"{kind}_vs_instantiation": r[kind]["us_per_call"] / WASMCLOUD_INSTANTIATE_US for kind in KINDS},
    }
    write_results(args.output, result)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
