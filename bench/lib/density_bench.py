#!/usr/bin/env python3
"""Density benchmark driver for hearth (stdlib only, Python 3.11).

N workloads of one component (the hello guest, each with its own route host) are applied to
one host through `PUT /v1/workloads/{name}` by `--clients` concurrent admin clients. Reported:

- **RSS per added workload**: the host's RSS after all N, minus its RSS with one workload of
  the same component already loaded (so the code is counted once, in the baseline), over N;
- **deploy time**: from the first PUT until every PUT has answered (a PUT answers once its
  workload serves);
- **answering**: every workload then answers `200` on its route (checked, not assumed), and
  the time to the first answer of one more workload applied on the full host.

With `--baseline PATH`, a second hearth binary runs the same load in the same run, for a
before/after ratio. Usually run through `bench/density`.
"""

from __future__ import annotations

import argparse
import http.client
import os
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
    set_log_prefix,
    write_results,
)

BENCH_DIR = Path(__file__).resolve().parent.parent
REPO_ROOT = BENCH_DIR.parent
TOKEN = "bench-density-token"
PUT_TIMEOUT_S = 60.0

set_log_prefix("density-bench")


def manifest(name: str, image: Path) -> bytes:
    return (
        f"apiVersion: hearth.dev/v1alpha1\nkind: Workload\nmetadata:\n  name: {name}\nspec:\n"
        f"  components:\n    - name: web\n      image: {image}\n      http: {{ host: {name}.localhost }}\n"
    ).encode()


class Client:
    """A kept-alive connection to one of the host's ports."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.conn: http.client.HTTPConnection | None = None

    def request(self, method: str, path: str, body: bytes | None, headers: dict) -> tuple[int, bytes]:
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(HOST, self.port, timeout=PUT_TIMEOUT_S)
            try:
                self.conn.request(method, path, body=body, headers=headers)
                r = self.conn.getresponse()
                return r.status, r.read()
            except (OSError, http.client.HTTPException):
                self.conn.close()
                self.conn = None
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def put(self, name: str, image: Path) -> None:
        headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/yaml"}
        status, body = self.request("PUT", f"/v1/workloads/{name}", manifest(name, image), headers)
        if status not in (200, 201):
            raise BenchError(f"PUT {name} answered {status}: {body[:300]!r}")

    def get(self, name: str) -> int:
        return self.request("GET", "/", None, {"Host": f"{name}.localhost"})[0]


def in_parallel(clients: int, port: int, names: list[str], work) -> None:
    """Runs `work(client, name)` for every name, `clients` at a time, each on its own connection."""
    errors: list[BaseException] = []
    chunks = [names[i::clients] for i in range(clients)]

    def run(chunk: list[str]) -> None:
        client = Client(port)
        try:
            for name in chunk:
                work(client, name)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(c,)) for c in chunks if c]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def measure(binary: Path, label: str, args: argparse.Namespace, tmp: Path) -> dict:
    image = args.guests_dir / "hello.wasm"
    host = AdminHost(binary, tmp, f"host-{label}", args.cache_dir, TOKEN, args.workers)
    try:
        admin = Client(host.admin_port)
        admin.put("warm", image)
        time.sleep(0.5)
        rss_before = host.rss_kib()
        names = [f"w{i}" for i in range(args.workloads)]
        log(f"{label}: applying {args.workloads} workloads with {args.clients} clients")
        started = time.perf_counter()
        in_parallel(args.clients, host.admin_port, names, lambda c, n: c.put(n, image))
        deployed = time.perf_counter() - started
        bad: list[str] = []
        in_parallel(args.clients, host.http_port, names, lambda c, n: c.get(n) == 200 or bad.append(n))
        answering = time.perf_counter() - started
        if bad:
            raise BenchError(f"{len(bad)} workloads did not answer 200 (first: {bad[0]})")
        time.sleep(1.0)
        rss_after = host.rss_kib()
        first_answer = []
        for i in range(args.samples):
            name = f"late{i}"
            t0 = time.perf_counter()
            admin.put(name, image)
            while Client(host.http_port).get(name) != 200:
                if time.perf_counter() - t0 > PUT_TIMEOUT_S:
                    raise BenchError(f"{name} never answered")
            first_answer.append((time.perf_counter() - t0) * 1e3)
    finally:
        host.stop()
    return {
        "workloads": args.workloads,
        "deploy_s": round(deployed, 3),
        "per_workload_ms": round(deployed * 1e3 / args.workloads, 3),
        "all_answering_s": round(answering, 3),
        "rss_before_mib": round(rss_before / 1024, 1),
        "rss_after_mib": round(rss_after / 1024, 1),
        "rss_per_workload_kib": round((rss_after - rss_before) / args.workloads, 1),
        "first_answer_ms_median": round(statistics.median(first_answer), 2),
    }


def run_all(args: argparse.Namespace, tmp: Path) -> dict:
    results = {"hearth": measure(args.hearth, "hearth", args, tmp)}
    if args.baseline:
        results["baseline"] = measure(args.baseline, "baseline", args, tmp)
    return results


def print_report(r: dict) -> None:
    print()
    print(f"{'binary':<10}{'workloads':>10}{'deploy s':>10}{'ms each':>9}{'answering s':>13}{'RSS/workload':>14}{'RSS end':>10}{'1st answer':>12}")
    for label, m in r.items():
        print(
            f"{label:<10}{m['workloads']:>10}{m['deploy_s']:>10.2f}{m['per_workload_ms']:>9.2f}{m['all_answering_s']:>13.2f}"
            f"{m['rss_per_workload_kib']:>10.1f} KiB{m['rss_after_mib']:>6.0f} MiB{m['first_answer_ms_median']:>9.1f} ms"
        )
    if "baseline" in r:
        h, b = r["hearth"], r["baseline"]
        print(f"hearth / baseline: deploy {h['deploy_s'] / b['deploy_s']:.2f}x, RSS per workload {h['rss_per_workload_kib'] / max(b['rss_per_workload_kib'], 0.1):.2f}x")
    print()


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--hearth", type=Path, default=REPO_ROOT / "target/release/hearth", help="hearth binary")
    p.add_argument("--baseline", type=Path, default=None, help="a second hearth binary, run the same way")
    p.add_argument("--guests-dir", type=Path, default=REPO_ROOT / "guests/target/wasm32-wasip2/release")
    p.add_argument("--workloads", type=int, default=10000, help="workloads of one component (default 10000)")
    p.add_argument("--clients", type=int, default=4, help="concurrent admin clients (default 4)")
    p.add_argument("--workers", type=int, default=1, help="hearth --workers (default 1; the host is pinned to one CPU)")
    p.add_argument("--cache-dir", type=Path, default=BENCH_DIR / ".cache/hearth-cache", help="hearth --cache-dir")
    p.add_argument("--samples", type=int, default=5, help="late workloads timed to their first answer (default 5)")
    p.add_argument("--output", type=Path, default=BENCH_DIR / "results/density-latest.json")
    args = p.parse_args(argv)
    if min(args.workloads, args.clients, args.workers, args.samples) < 1:
        p.error("--workloads, --clients, --workers and --samples must be positive")
    return args


def check_inputs(args: argparse.Namespace) -> None:
    missing = []
    for binary in filter(None, (args.hearth, args.baseline)):
        if not os.access(binary, os.X_OK):
            missing.append(f"hearth not found at {binary} (cargo build --release -p hearth-cli)")
    if not (args.guests_dir / "hello.wasm").is_file():
        missing.append(f"hello.wasm not found in {args.guests_dir} (cd guests && cargo build --release)")
    raise_if_missing(missing)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    plan = f"{args.workloads} workloads of one component, {args.clients} admin clients, hearth --workers {args.workers}"
    got = run_driver(args, check_inputs, plan, "hearth-density-bench-", run_all)
    if isinstance(got, int):
        return got
    info, r = got
    print_report(r)
    result = {"machine": info, "config": {"server_cpu": SERVER_CPU, "workers": args.workers, "clients": args.clients}, **r}
    write_results(args.output, result)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
