#!/usr/bin/env python3
"""Lifecycle benchmark driver for hearth (stdlib only, Python 3.11).

Three measurements of a live host changing under `PUT /v1/workloads/{name}`:

1. **PUT to serving.** Time from sending the `PUT` until a `GET` on the new
   workload's route answers `200` (the `PUT` itself answers once the version
   serves). Three cases, each over `--samples` distinct components (the hello
   guest with a unique custom section appended, so each has new bytes):
   `uncompiled` (an empty compile cache), `disk-cached` (a fresh host process
   on the cache the first host filled) and `shared` (the same bytes already
   loaded in this host for another workload).
2. **Many workloads.** `--workloads` workloads applied one after another on
   one host: the total time, and the host's RSS growth per workload at the
   end. Once with a component per workload (hello), once with a service per
   workload (the echo service).
3. **Serving while compiling.** wrk (pinned to CPU 0, 16 connections) against
   a busy workload on a host pinned to CPU 1 (`--workers 1`), twice: alone,
   and while distinct copies of a large component (bench/big-guest, several
   seconds to compile) are applied one after another for the whole window.
   The ratio of the two p99s is what a compile costs the requests being
   served.

Usually run through `bench/lifecycle`, which builds what is needed.
"""

from __future__ import annotations

import argparse
import http.client
import os
import shutil
import statistics
import sys
import threading
import time
from pathlib import Path

from common import (
    HOST,
    SERVER_CPU,
    AdminHost,
    BenchError,
    log,
    raise_if_missing,
    run_driver,
    run_wrk,
    set_log_prefix,
    write_results,
    wrk_notes,
)

BENCH_DIR = Path(__file__).resolve().parent.parent
REPO_ROOT = BENCH_DIR.parent
TOKEN = "bench-lifecycle-token"

set_log_prefix("lifecycle-bench")


# ---------------------------------------------------------------------------
# Components with new bytes


def with_custom_section(wasm: bytes, tag: str) -> bytes:
    """`wasm` plus a custom section named `hearth-bench` holding `tag`: the same component,
    different bytes (so a different compile-cache key)."""

    def leb(n: int) -> bytes:
        out = bytearray()
        while True:
            byte = n & 0x7F
            n >>= 7
            if n:
                out.append(byte | 0x80)
            else:
                out.append(byte)
                return bytes(out)

    name = b"hearth-bench"
    payload = leb(len(name)) + name + tag.encode()
    return wasm + b"\x00" + leb(len(payload)) + payload


def variants(src: Path, tmp: Path, prefix: str, count: int) -> list[Path]:
    wasm = src.read_bytes()
    out = []
    for i in range(count):
        path = tmp / f"{prefix}-{i}.wasm"
        path.write_bytes(with_custom_section(wasm, f"{prefix}-{i}-{time.time_ns()}"))
        out.append(path)
    return out


# ---------------------------------------------------------------------------
# A host and its admin API


class Host(AdminHost):
    def __init__(self, args: argparse.Namespace, tmp: Path, name: str, cache_dir: Path) -> None:
        super().__init__(args.hearth, tmp, name, cache_dir, TOKEN)

    def put(self, name: str, manifest: str) -> tuple[int, str]:
        conn = http.client.HTTPConnection(HOST, self.admin_port, timeout=300)
        try:
            conn.request(
                "PUT",
                f"/v1/workloads/{name}",
                body=manifest.encode(),
                headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/yaml"},
            )
            r = conn.getresponse()
            return r.status, r.read().decode(errors="replace")
        finally:
            conn.close()

    def apply(self, name: str, manifest: str) -> None:
        status, body = self.put(name, manifest)
        if status not in (200, 201):
            raise BenchError(f"PUT {name} answered {status}: {body}")

    def get_status(self, host: str, path: str = "/") -> int | None:
        try:
            conn = http.client.HTTPConnection(HOST, self.http_port, timeout=30)
            conn.request("GET", path, headers={"Host": host})
            status = conn.getresponse().status
            conn.close()
            return status
        except (OSError, http.client.HTTPException):
            return None


def component(name: str, image: Path, host: str | None) -> str:
    route = f"{{ host: {host} }}" if host else "{}"
    return (
        f"apiVersion: hearth.dev/v1alpha1\nkind: Workload\nmetadata:\n  name: {name}\nspec:\n"
        f"  components:\n    - name: web\n      image: {image}\n      http: {route}\n"
    )


def service(name: str, image: Path) -> str:
    return (
        f"apiVersion: hearth.dev/v1alpha1\nkind: Workload\nmetadata:\n  name: {name}\nspec:\n"
        f"  service:\n    image: {image}\n"
    )


# ---------------------------------------------------------------------------
# 1. PUT to serving


def put_to_serving(host: Host, name: str, image: Path) -> float:
    started = time.perf_counter()
    host.apply(name, component(name, image, f"{name}.localhost"))
    while host.get_status(f"{name}.localhost") != 200:
        if time.perf_counter() - started > 300:
            raise BenchError(f"{name} never served")
    return (time.perf_counter() - started) * 1e3


def summary(ms: list[float]) -> dict:
    return {"median_ms": statistics.median(ms), "min_ms": min(ms), "max_ms": max(ms), "samples": len(ms)}


def measure_put(args: argparse.Namespace, tmp: Path) -> dict:
    cache = tmp / "put-cache"
    images = variants(args.guests_dir / "hello.wasm", tmp, "hello", args.samples)
    log(f"PUT to serving: {args.samples} uncompiled components")
    first = Host(args, tmp, "host-put-1", cache)
    try:
        uncompiled = [put_to_serving(first, f"u{i}", img) for i, img in enumerate(images)]
    finally:
        first.stop()
    log("PUT to serving: the same components from the disk cache, then shared in memory")
    second = Host(args, tmp, "host-put-2", cache)
    try:
        disk = [put_to_serving(second, f"d{i}", img) for i, img in enumerate(images)]
        shared = [put_to_serving(second, f"s{i}", img) for i, img in enumerate(images)]
    finally:
        second.stop()
    return {"uncompiled": summary(uncompiled), "disk_cached": summary(disk), "shared": summary(shared)}


# ---------------------------------------------------------------------------
# 2. Many workloads


def measure_many(args: argparse.Namespace, tmp: Path, kind: str) -> dict:
    n = args.workloads
    host = Host(args, tmp, f"host-many-{kind}", args.cache_dir)
    try:
        if kind == "component":
            manifest = lambda i: component(f"w{i}", args.guests_dir / "hello.wasm", f"w{i}.localhost")  # noqa: E731
        else:
            manifest = lambda i: service(f"w{i}", args.guests_dir / "echo.wasm")  # noqa: E731
        # One workload first so the code is loaded (the RSS baseline then holds it once).
        host.apply("warm", manifest(n).replace(f"w{n}", "warm"))
        time.sleep(0.5)
        rss_before = host.rss_kib()
        log(f"applying {n} {kind} workloads one after another")
        started = time.perf_counter()
        for i in range(n):
            host.apply(f"w{i}", manifest(i))
        total = time.perf_counter() - started
        time.sleep(1.0)
        rss_after = host.rss_kib()
        probe = host.get_status("w0.localhost") if kind == "component" else None
    finally:
        host.stop()
    return {
        "workloads": n,
        "total_s": round(total, 3),
        "per_apply_ms": round(total * 1e3 / n, 3),
        "rss_before_mib": round(rss_before / 1024, 1),
        "rss_after_mib": round(rss_after / 1024, 1),
        "rss_per_workload_kib": round((rss_after - rss_before) / n, 1),
        "first_workload_status_after": probe,
    }


# ---------------------------------------------------------------------------
# 3. Serving while compiling


def measure_compile_interference(args: argparse.Namespace, tmp: Path) -> dict:
    host = Host(args, tmp, "host-busy", tmp / "busy-cache")
    try:
        host.apply("busy", component("busy", args.guests_dir / "hello.wasm", None))
        log(f"wrk {args.duration:g}s alone (warm-up 2s first)")
        run_wrk(args.wrk, host.http_port, args.connections, 2)
        alone = run_wrk(args.wrk, host.http_port, args.connections, args.duration)

        compiles: list[float] = []
        stop = threading.Event()
        big = args.big_wasm.read_bytes()

        def keep_compiling() -> None:
            i = 0
            while not stop.is_set():
                image = tmp / f"big-{i}.wasm"
                image.write_bytes(with_custom_section(big, f"big-{i}-{time.time_ns()}"))
                started = time.perf_counter()
                host.apply(f"big{i}", component(f"big{i}", image, f"big{i}.localhost"))
                compiles.append(time.perf_counter() - started)
                i += 1

        log(f"wrk {args.duration:g}s while large components compile")
        worker = threading.Thread(target=keep_compiling, daemon=True)
        worker.start()
        time.sleep(0.3)
        during = run_wrk(args.wrk, host.http_port, args.connections, args.duration)
        stop.set()
        worker.join(timeout=600)
    finally:
        host.stop()
    return {
        "connections": args.connections,
        "duration_s": args.duration,
        "alone": alone,
        "while_compiling": during,
        "compiles_finished": len(compiles),
        "compile_s": [round(c, 2) for c in compiles],
        "big_component_bytes": len(big),
        "p99_ratio": during["p99_us"] / alone["p99_us"],
        "rps_ratio": during["rps"] / alone["rps"],
    }


# ---------------------------------------------------------------------------


def run_all(args: argparse.Namespace, tmp: Path) -> dict:
    return {
        "put_to_serving": measure_put(args, tmp),
        "many_components": measure_many(args, tmp, "component"),
        "many_services": measure_many(args, tmp, "service"),
        "serving_while_compiling": measure_compile_interference(args, tmp),
    }


def print_report(r: dict) -> None:
    print()
    print(f"PUT to serving (ms; hearth --workers 1 on CPU {SERVER_CPU})")
    print(f"  {'case':<14}{'median':>10}{'min':>10}{'max':>10}")
    for case in ("uncompiled", "disk_cached", "shared"):
        c = r["put_to_serving"][case]
        print(f"  {case:<14}{c['median_ms']:>10.1f}{c['min_ms']:>10.1f}{c['max_ms']:>10.1f}")
    print()
    print("Workloads applied one after another")
    print(f"  {'kind':<12}{'count':>7}{'total s':>10}{'ms/apply':>10}{'RSS/workload':>14}{'RSS at end':>12}")
    for kind in ("many_components", "many_services"):
        m = r[kind]
        print(
            f"  {kind.removeprefix('many_'):<12}{m['workloads']:>7}{m['total_s']:>10.2f}{m['per_apply_ms']:>10.2f}"
            f"{m['rss_per_workload_kib']:>11.0f} KiB{m['rss_after_mib']:>8.0f} MiB"
        )
    s = r["serving_while_compiling"]
    print()
    print(f"Serving while compiling (wrk -c{s['connections']} {s['duration_s']:g}s; big component {s['big_component_bytes'] / 1e6:.1f} MB)")
    for label, k in (("alone", "alone"), ("compiling", "while_compiling")):
        w = s[k]
        print(f"  {label:<12}{w['rps']:>10,.0f} req/s  p50 {w['p50_us']:>7.0f} µs  p99 {w['p99_us']:>7.0f} µs  {wrk_notes(w)}")
    print(f"  p99 ratio {s['p99_ratio']:.2f}x, req/s ratio {s['rps_ratio']:.2f}x; {s['compiles_finished']} compiles finished ({', '.join(f'{c:g}s' for c in s['compile_s'])})")
    print()


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--hearth", type=Path, default=REPO_ROOT / "target/release/hearth", help="hearth binary")
    p.add_argument("--guests-dir", type=Path, default=REPO_ROOT / "guests/target/wasm32-wasip2/release")
    p.add_argument("--big-wasm", type=Path, default=BENCH_DIR / ".cache/big-guest/wasm32-wasip2/release/big_guest.wasm")
    p.add_argument("--cache-dir", type=Path, default=BENCH_DIR / ".cache/hearth-cache", help="hearth --cache-dir")
    p.add_argument("--wrk", default=shutil.which("wrk") or "wrk")
    p.add_argument("--samples", type=int, default=5, help="components per PUT-to-serving case (default 5)")
    p.add_argument("--workloads", type=int, default=1000, help="workloads applied one after another (default 1000)")
    p.add_argument("--duration", type=float, default=10.0, help="seconds of each wrk run (default 10)")
    p.add_argument("--connections", type=int, default=16, help="wrk connections (default 16)")
    p.add_argument("--log-dir", type=Path, default=None, help="keep hearth's logs here (default: a temp dir)")
    p.add_argument("--output", type=Path, default=BENCH_DIR / "results/lifecycle-latest.json")
    args = p.parse_args(argv)
    if args.samples < 1 or args.workloads < 1 or args.duration <= 0 or args.connections < 1:
        p.error("--samples, --workloads, --duration and --connections must be positive")
    return args


def check_inputs(args: argparse.Namespace) -> None:
    missing = []
    for tool in ("taskset", args.wrk):
        if shutil.which(tool) is None:
            missing.append(f"`{tool}` not found on PATH")
    if not os.access(args.hearth, os.X_OK):
        missing.append(f"hearth not found at {args.hearth} (cargo build --release -p hearth-cli)")
    for name in ("hello.wasm", "echo.wasm"):
        if not (args.guests_dir / name).is_file():
            missing.append(f"{name} not found in {args.guests_dir} (cd guests && cargo build --release)")
    if not args.big_wasm.is_file():
        missing.append(f"{args.big_wasm} not found (bench/lifecycle builds bench/big-guest)")
    if (os.cpu_count() or 1) < 2:
        missing.append("pinning to CPU 1 needs at least 2 CPUs")
    raise_if_missing(missing)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    plan = (
        f"PUT-to-serving x{args.samples} per case; {args.workloads} workloads one after another; "
        f"wrk -c{args.connections} {args.duration:g}s alone and while compiling"
    )
    got = run_driver(args, check_inputs, plan, "hearth-lifecycle-bench-", run_all)
    if isinstance(got, int):
        return got
    info, r = got
    print_report(r)
    result = {"machine": info, "config": {"server_cpu": int(SERVER_CPU), "hearth_workers": 1}, **r}
    write_results(args.output, result)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
