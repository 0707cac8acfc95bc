#!/usr/bin/env python3
"""Messaging benchmark driver for hearth (stdlib only, Python 3.11).

One workload on a real `nats-server`: guests/iface-http answers `GET /request/greet.bench`
by sending a `wasmcloud:messaging` request to `greet.bench`; guests/msg-handler, subscribed
to `greet.*`, is delivered that message on a fresh instance and publishes the reply. So
every HTTP request is one guest request, one delivery and one guest publish through NATS.

Each hearth binary (`--hearth`, and `--baseline` to compare a change side by side) runs
with every `--workers` count. With one worker hearth is pinned to CPU 1 and wrk and
nats-server to CPU 0; with two, hearth may run on both CPUs (and shares CPU 0 with them).
Each run is `--duration` seconds after `--warmup` seconds of discarded load.

Usually run through `bench/messaging`, which builds what is needed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import sys
import time
from pathlib import Path

from common import (
    CLIENT_CPU,
    HOST,
    SERVER_CPU,
    BenchError,
    Process,
    free_port,
    http_get,
    log,
    pinned,
    raise_if_missing,
    run_driver,
    run_wrk,
    set_log_prefix,
    write_results,
    wrk_notes,
)

BENCH_DIR = Path(__file__).resolve().parent.parent
REPO_ROOT = BENCH_DIR.parent
READY_TIMEOUT_S = 120.0
PATH = "/request/greet.bench?body=x&timeout=2000"
EXPECTED = "hi, x"

set_log_prefix("messaging-bench")


def write_manifest(path: Path, args: argparse.Namespace, nats_port: int) -> Path:
    path.write_text(
        "apiVersion: hearth.dev/v1alpha1\n"
        "kind: Workload\n"
        "metadata:\n"
        "  name: msgbench\n"
        "spec:\n"
        "  hostInterfaces:\n"
        "    - interface: wasmcloud:messaging/consumer\n"
        "      backend: nats\n"
        f'      config: {{ url: "nats://{HOST}:{nats_port}" }}\n'
        "  components:\n"
        "    - name: api\n"
        f"      image: {json.dumps(str(args.api_wasm.resolve()))}\n"
        "      http: {}\n"
        "      limits: { maxConcurrency: 1000 }\n"
        "    - name: handler\n"
        f"      image: {json.dumps(str(args.handler_wasm.resolve()))}\n"
        '      subscriptions: ["greet.*"]\n'
        "      config: { greeting: hi }\n"
        "      limits: { maxConcurrency: 1000 }\n"
    )
    return path


def start_nats(tmp: Path, nats: str) -> tuple[Process, int]:
    port = free_port()
    proc = Process("nats-server", pinned([nats, "-a", HOST, "-p", str(port)], CLIENT_CPU), tmp / "nats.log")
    deadline = time.monotonic() + 10
    while True:
        try:
            with socket.create_connection((HOST, port), timeout=1.0) as s:
                if s.recv(4).startswith(b"INFO"):
                    return proc, port
        except OSError:
            pass
        proc.check_alive()
        if time.monotonic() > deadline:
            proc.kill()
            raise BenchError(f"nats-server did not greet on {port}; its output:\n{proc.log_tail()}")
        time.sleep(0.05)


def bench_hearth(args: argparse.Namespace, tmp: Path, name: str, binary: Path, workers: int, nats_port: int) -> dict:
    manifest = write_manifest(tmp / "msgbench.yaml", args, nats_port)
    port = free_port()
    cpus = SERVER_CPU if workers == 1 else ",".join([CLIENT_CPU, SERVER_CPU])
    argv = [
        str(binary), "run", "--http", f"{HOST}:{port}", "--cache-dir", str(args.cache_dir.resolve()),
        "--workers", str(workers), str(manifest),
    ]  # fmt: skip
    label = f"{name} --workers {workers}"
    proc = Process(f"{name}-w{workers}", pinned(argv, cpus), tmp / f"{name}-w{workers}.log", {"RUST_LOG": "warn"})
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            try:
                status, body = http_get(port, PATH, timeout=3.0)
                if (status, body) == (200, EXPECTED):
                    break
            except OSError:
                pass
            proc.check_alive()
            if time.monotonic() > deadline:
                raise BenchError(f"{label} not answering {PATH}; its output:\n{proc.log_tail()}")
            time.sleep(0.05)
        rows = {}
        for conns in args.connections:
            log(f"{label}: warm-up {args.warmup:g}s, then {args.duration:g}s at {conns} connection(s)")
            run_wrk(args.wrk, port, conns, args.warmup, PATH)
            r = run_wrk(args.wrk, port, conns, args.duration, PATH)
            if r["non_2xx"] or r["socket_errors"]:
                log(f"WARNING: {label} at {conns}: {wrk_notes(r)}")
            rows[conns] = r
        return rows
    finally:
        proc.stop()


def run_all(args: argparse.Namespace, tmp: Path) -> dict:
    binaries = [("hearth", args.hearth)] + ([("hearth-baseline", args.baseline)] if args.baseline else [])
    nats, nats_port = start_nats(tmp, args.nats_server)
    results: dict = {}
    try:
        for workers in args.workers:
            for name, binary in binaries:
                results.setdefault(name, {})[workers] = bench_hearth(args, tmp, name, binary, workers, nats_port)
    finally:
        nats.stop()
    return results


def print_report(args: argparse.Namespace, results: dict) -> dict:
    print()
    print(f"HTTP request → guest NATS request → delivery to the handler → its reply "
          f"({args.duration:g}s runs after {args.warmup:g}s warm-up)")  # fmt: skip
    print(f"  {'hearth':<17}{'workers':>8}{'conns':>6}{'req/s':>12}{'p50 µs':>10}{'p99 µs':>10}  notes")
    for name, by_workers in results.items():
        for workers, rows in by_workers.items():
            for conns, r in rows.items():
                print(f"  {name:<17}{workers:>8}{conns:>6}{r['rps']:>12,.0f}{r['p50_us']:>10.0f}"
                      f"{r['p99_us']:>10.0f}  {wrk_notes(r)}")  # fmt: skip
    ratios: dict = {}
    if "hearth-baseline" in results:
        print()
        print("  hearth / hearth-baseline (req/s)")
        for workers in args.workers:
            row = {}
            for conns in args.connections:
                base = results["hearth-baseline"][workers][conns]["rps"]
                if base:
                    row[conns] = results["hearth"][workers][conns]["rps"] / base
            ratios[f"workers={workers}"] = row
            print(f"  --workers {workers}: " + "  ".join(f"{c} conns {v:.2f}x" for c, v in row.items()))
    print()
    return ratios


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--hearth", type=Path, default=REPO_ROOT / "target/release/hearth", help="hearth binary")
    p.add_argument("--baseline", type=Path, default=None, help="another hearth binary, measured as hearth-baseline")
    p.add_argument(
        "--api-wasm",
        type=Path,
        default=REPO_ROOT / "guests/target/wasm32-wasip2/release/iface_http.wasm",
        help="the iface-http component",
    )
    p.add_argument(
        "--handler-wasm",
        type=Path,
        default=REPO_ROOT / "guests/target/wasm32-wasip2/release/msg_handler.wasm",
        help="the msg-handler component",
    )
    p.add_argument("--nats-server", default=shutil.which("nats-server") or "nats-server", help="nats-server binary")
    p.add_argument("--wrk", default="wrk", help="wrk binary")
    p.add_argument("--cache-dir", type=Path, default=BENCH_DIR / ".cache/hearth-cache", help="hearth --cache-dir")
    p.add_argument("--duration", type=float, default=5.0, help="seconds per measured run (default 5)")
    p.add_argument("--warmup", type=float, default=1.0, help="seconds of discarded load before each run (default 1)")
    ints = lambda s: [int(x) for x in s.split(",") if x]  # noqa: E731
    p.add_argument("--connections", type=ints, default=[1, 64], help="comma-separated (default 1,64)")
    p.add_argument("--workers", type=ints, default=[1, 2], help="hearth --workers values (default 1,2)")
    p.add_argument("--log-dir", type=Path, default=None, help="keep the logs and manifests here (default: a temp dir)")
    p.add_argument(
        "--output", type=Path, default=BENCH_DIR / "results/messaging-latest.json", help="the JSON results"
    )
    args = p.parse_args(argv)
    if args.duration < 1 or args.warmup < 1:
        p.error("--duration and --warmup must be at least 1 second (wrk's resolution)")
    if not args.connections or min(args.connections) < 1:
        p.error("--connections must be positive")
    if not args.workers or min(args.workers) < 1 or max(args.workers) > 2:
        p.error("--workers: expected 1 and/or 2 (hearth is pinned to CPU 1, or CPUs 0 and 1)")
    return args


def check_inputs(args: argparse.Namespace) -> None:
    missing = []
    for tool in ("taskset", args.wrk, args.nats_server):
        if shutil.which(tool) is None:
            missing.append(f"`{tool}` not found (scripts/setup installs nats-server into .tools/venv/bin)")
    for name, binary in (("hearth", args.hearth), ("baseline", args.baseline)):
        if binary is not None and not os.access(binary, os.X_OK):
            missing.append(f"{name} binary not found at {binary} (cargo build --release -p hearth-cli)")
    for wasm in (args.api_wasm, args.handler_wasm):
        if not wasm.is_file():
            missing.append(f"{wasm} not found (cd guests && cargo build --release)")
    if (os.cpu_count() or 1) < 2:
        missing.append("pinning to CPUs 0 and 1 needs at least 2 CPUs")
    raise_if_missing(missing)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    plan = (f"workers {args.workers} at {args.connections} connection(s), "
            f"{args.warmup:g}s warm-up + {args.duration:g}s each")  # fmt: skip
    got = run_driver(args, check_inputs, plan, "hearth-messaging-bench-", run_all)
    if isinstance(got, int):
        return got
    info, results = got
    ratios = print_report(args, results)
    out = {
        "machine": info,
        "config": {
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "connections": args.connections,
            "workers": args.workers,
            "path": PATH,
            "pinning": {"1 worker": f"hearth on CPU {SERVER_CPU}, wrk and nats-server on CPU {CLIENT_CPU}",
                        "2 workers": "hearth on CPUs 0-1, wrk and nats-server on CPU 0"},  # fmt: skip
        },
        "results": {
            name: {f"workers={w}": {str(c): r for c, r in rows.items()} for w, rows in by_workers.items()}
            for name, by_workers in results.items()
        },
        "ratios": {k: {str(c): v for c, v in row.items()} for k, row in ratios.items()},
    }
    write_results(args.output, out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
