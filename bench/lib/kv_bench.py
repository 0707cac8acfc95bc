#!/usr/bin/env python3
"""Key-value benchmark driver for hearth (stdlib only, Python 3.11).

`wasi:keyvalue` `atomics.increment` through a guest, against a native Redis client:

  hearth-memory  hearth running guests/kv-http with the `memory` backend;
                 wrk sends `GET /incr/bench/counter`, one increment per request
  hearth-redis   the same, with the `redis` backend (HINCRBY on a Redis hash)
  native-redis   bench/native-kv: N tasks, each with its own Redis connection, sending
                 HINCRBY back to back (no HTTP, no Wasm): the ceiling for hearth-redis

CPU 1 runs the application (hearth, or native-kv); CPU 0 runs the load generator (wrk) and
redis-server. Each run is `--duration` seconds after `--warmup` seconds of discarded load.
After each hearth run the counter is read back, so the results show that every answered
request incremented it.

Usually run through `bench/kv`, which builds what is needed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
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
    http_get_status,
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

CONTENDERS = ("hearth-memory", "hearth-redis", "native-redis")
READY_TIMEOUT_S = 120.0
PATH = "/incr/bench/counter"

set_log_prefix("kv-bench")


def write_manifest(path: Path, wasm: Path, interfaces: str) -> Path:
    path.write_text(
        "apiVersion: hearth.dev/v1alpha1\n"
        "kind: Workload\n"
        "metadata:\n"
        "  name: kvbench\n"
        "spec:\n"
        f"{interfaces}"
        "  components:\n"
        "    - name: kv\n"
        f"      image: {json.dumps(str(wasm.resolve()))}\n"
        "      http: {}\n"
        "      limits: { maxConcurrency: 1000 }\n"
    )
    return path


def redis_ping(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=1.0) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def start_redis(tmp: Path) -> tuple[Process, int]:
    port = free_port()
    argv = ["redis-server", "--port", str(port), "--bind", HOST, "--save", "", "--appendonly", "no"]
    proc = Process("redis-server", pinned(argv, CLIENT_CPU), tmp / "redis.log")
    deadline = time.monotonic() + 10
    while not redis_ping(port):
        proc.check_alive()
        if time.monotonic() > deadline:
            proc.kill()
            raise BenchError(f"redis-server did not answer PING on {port}; its output:\n{proc.log_tail()}")
        time.sleep(0.05)
    return proc, port


def start_hearth(args: argparse.Namespace, tmp: Path, name: str, interfaces: str) -> tuple[Process, int]:
    manifest = write_manifest(tmp / f"{name}.yaml", args.kv_wasm, interfaces)
    port = free_port()
    argv = [
        str(args.hearth), "run", "--http", f"{HOST}:{port}", "--cache-dir", str(args.cache_dir.resolve()),
        str(manifest),
    ]  # fmt: skip
    proc = Process(name, pinned(argv), tmp / f"{name}.log", {"RUST_LOG": "warn"})
    deadline = time.monotonic() + READY_TIMEOUT_S
    while http_get_status(port, timeout=2.0, path="/exists/bench/counter") != 200:
        proc.check_alive()
        if time.monotonic() > deadline:
            proc.kill()
            raise BenchError(f"{name} not ready after {READY_TIMEOUT_S:.0f}s; its output:\n{proc.log_tail()}")
        time.sleep(0.05)
    return proc, port


def counter(port: int) -> int:
    status, body = http_get(port, "/get/bench/counter", timeout=5.0)
    if status == 404:
        return 0
    if status != 200:
        raise BenchError(f"GET /get/bench/counter: {status} {body}")
    return int(body.strip())


def bench_hearth(args: argparse.Namespace, tmp: Path, name: str, interfaces: str) -> dict:
    proc, port = start_hearth(args, tmp, name, interfaces)
    try:
        rows = {}
        for conns in args.connections:
            before = counter(port)
            log(f"{name}: warm-up {args.warmup:g}s, then {args.duration:g}s at {conns} connection(s)")
            run_wrk(args.wrk, port, conns, args.warmup, PATH)
            middle = counter(port)
            r = run_wrk(args.wrk, port, conns, args.duration, PATH)
            after = counter(port)
            r["increments"] = after - middle
            r["warmup_increments"] = middle - before
            if r["non_2xx"] or r["increments"] < (r["requests"] or 0):
                log(f"WARNING: {name} at {conns}: {wrk_notes(r)} increments={r['increments']} requests={r['requests']}")
            rows[conns] = r
        return rows
    finally:
        proc.stop()


def bench_native(args: argparse.Namespace, redis_port: int) -> dict:
    rows = {}
    for conns in args.connections:
        log(f"native-redis: warm-up {args.warmup:g}s, then {args.duration:g}s at {conns} connection(s)")
        argv = [str(args.native_kv), f"redis://{HOST}:{redis_port}", str(conns), str(args.duration), str(args.warmup)]
        proc = subprocess.run(pinned(argv), capture_output=True, text=True, timeout=args.duration + args.warmup + 60)
        if proc.returncode != 0:
            raise BenchError(f"native-kv failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        rows[conns] = {
            "rps": r["ops_per_sec"],
            "p50_us": float(r["p50_us"]),
            "p99_us": float(r["p99_us"]),
            "requests": r["ops"],
            "secs": r["secs"],
        }
    return rows


def print_report(args: argparse.Namespace, results: dict) -> dict:
    print()
    print(f"atomics.increment, one per request ({args.duration:g}s runs after {args.warmup:g}s warm-up); "
          f"app on CPU {SERVER_CPU}, wrk and redis-server on CPU {CLIENT_CPU}")  # fmt: skip
    print(f"  {'contender':<15}{'conns':>6}{'req/s':>12}{'p50 µs':>10}{'p99 µs':>10}  notes")
    for name in CONTENDERS:
        for conns, r in results.get(name, {}).items():
            notes = wrk_notes(r) if "non_2xx" in r else ""
            if "increments" in r:
                notes = (notes + f" counted={r['increments']}").strip()
            print(f"  {name:<15}{conns:>6}{r['rps']:>12,.0f}{r['p50_us']:>10.0f}{r['p99_us']:>10.0f}  {notes}")
    ratios: dict = {}
    pairs = [
        ("hearth-redis", "native-redis"),
        ("hearth-memory", "native-redis"),
        ("hearth-redis", "hearth-memory"),
    ]
    print()
    print(f"  {'ratio (req/s), connections':<30}" + "".join(f"{c:>12}" for c in args.connections))
    for a, b in pairs:
        if a not in results or b not in results:
            continue
        row = {c: results[a][c]["rps"] / results[b][c]["rps"] for c in args.connections if results[b][c]["rps"]}
        ratios[f"{a}/{b}"] = row
        print(f"  {a + ' / ' + b:<30}" + "".join(f"{row.get(c, 0):>11.2f}x" for c in args.connections))
    print()
    return ratios


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--hearth", type=Path, default=REPO_ROOT / "target/release/hearth", help="hearth binary")
    p.add_argument("--native-kv", type=Path, default=REPO_ROOT / "target/release/native-kv", help="native-kv binary")
    p.add_argument(
        "--kv-wasm",
        type=Path,
        default=REPO_ROOT / "guests/target/wasm32-wasip2/release/kv_http.wasm",
        help="the kv-http component",
    )
    p.add_argument("--wrk", default="wrk", help="wrk binary")
    p.add_argument("--cache-dir", type=Path, default=BENCH_DIR / ".cache/hearth-cache", help="hearth --cache-dir")
    p.add_argument("--duration", type=float, default=5.0, help="seconds per measured run (default 5)")
    p.add_argument("--warmup", type=float, default=1.0, help="seconds of discarded load before each run (default 1)")
    p.add_argument(
        "--connections",
        type=lambda s: [int(x) for x in s.split(",") if x],
        default=[1, 64],
        help="comma-separated connection counts (default 1,64)",
    )
    p.add_argument("--only", default=",".join(CONTENDERS), help=f"comma-separated subset of {','.join(CONTENDERS)}")
    p.add_argument("--log-dir", type=Path, default=None, help="keep the logs and manifests here (default: a temp dir)")
    p.add_argument("--output", type=Path, default=BENCH_DIR / "results/kv-latest.json", help="the JSON results")
    args = p.parse_args(argv)
    args.only = [x for x in args.only.split(",") if x]
    unknown = [x for x in args.only if x not in CONTENDERS]
    if unknown:
        p.error(f"unknown contender(s) {unknown}: expected some of {', '.join(CONTENDERS)}")
    if args.duration < 1 or args.warmup < 1:
        p.error("--duration and --warmup must be at least 1 second (wrk's resolution)")
    if not args.connections or min(args.connections) < 1:
        p.error("--connections must be positive")
    return args


def check_inputs(args: argparse.Namespace) -> None:
    missing = []
    for tool in ("taskset", args.wrk):
        if shutil.which(tool) is None:
            missing.append(f"`{tool}` not found on PATH")
    if any(c.endswith("redis") for c in args.only) and shutil.which("redis-server") is None:
        missing.append("`redis-server` not found on PATH (scripts/setup installs it)")
    if any(c.startswith("hearth") for c in args.only):
        if not os.access(args.hearth, os.X_OK):
            missing.append(f"hearth not found at {args.hearth} (cargo build --release -p hearth-cli)")
        if not args.kv_wasm.is_file():
            missing.append(f"{args.kv_wasm} not found (cd guests && cargo build --release)")
    if "native-redis" in args.only and not os.access(args.native_kv, os.X_OK):
        missing.append(f"native-kv not found at {args.native_kv} (cargo build --release -p hearth-bench-native-kv)")
    if (os.cpu_count() or 1) < 2:
        missing.append("pinning to CPUs 0 and 1 needs at least 2 CPUs")
    raise_if_missing(missing)


def run_all(args: argparse.Namespace, tmp: Path) -> dict:
    results: dict = {}
    if "hearth-memory" in args.only:
        results["hearth-memory"] = bench_hearth(args, tmp, "hearth-memory", "")
    if "hearth-redis" in args.only or "native-redis" in args.only:
        redis, redis_port = start_redis(tmp)
        try:
            if "hearth-redis" in args.only:
                interfaces = (
                    "  hostInterfaces:\n"
                    "    - interface: wasi:keyvalue\n"
                    "      backend: redis\n"
                    f'      config: {{ url: "redis://{HOST}:{redis_port}" }}\n'
                )
                results["hearth-redis"] = bench_hearth(args, tmp, "hearth-redis", interfaces)
            if "native-redis" in args.only:
                results["native-redis"] = bench_native(args, redis_port)
        finally:
            redis.stop()
    return results


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    plan = (f"{', '.join(args.only)} at {args.connections} connection(s), "
            f"{args.warmup:g}s warm-up + {args.duration:g}s each")  # fmt: skip
    got = run_driver(args, check_inputs, plan, "hearth-kv-bench-", run_all)
    if isinstance(got, int):
        return got
    info, results = got

    ratios = print_report(args, results)
    out = {
        "machine": info,
        "config": {
            "app_cpu": int(SERVER_CPU),
            "load_and_redis_cpu": int(CLIENT_CPU),
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "connections": args.connections,
            "path": PATH,
            "hearth_limits": {"maxConcurrency": 1000},
            "native": "bench/native-kv: one Redis connection per task, HINCRBY, current-thread tokio",
        },
        "results": {name: {str(c): r for c, r in rows.items()} for name, rows in results.items()},
        "ratios": {k: {str(c): v for c, v in row.items()} for k, row in ratios.items()},
    }
    write_results(args.output, out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
