#!/usr/bin/env python3
"""Cluster benchmark driver for hearth (stdlib only, Python 3.11).

A NATS server (JetStream), three `hearth host` processes and a `hearth controller`, all
on loopback, measured three ways:

1. **Apply to ready.** `--deployments` deployments of `--replicas` replicas each (the
   hello guest, a route each) applied in one `hearth apply --cluster`; the time until
   every replica is ready (the sum of `availableReplicas`), polled every 100 ms.
2. **Reschedule after `kill -9`.** `--rounds` times: kill the host running the replica
   of a one-replica deployment, measure the time until a replica is ready on another
   host (polled every 100 ms), restart the killed host.
3. **Forwarding.** wrk (CPU 0) against the host that runs a one-replica deployment and
   against one that forwards to it (hosts on CPU 1), at 1 and 32 connections; and
   against native-hello at 1 connection as the cost of one loopback HTTP round trip.

Usually run through `bench/cluster`, which builds what is needed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from common import (
    HOST,
    SERVER_CPU,
    BenchError,
    Process,
    free_port,
    http_get_status,
    log,
    pinned,
    run_driver,
    run_wrk,
    set_log_prefix,
    wait_port,
    wrk_notes,
)

BENCH_DIR = Path(__file__).resolve().parent.parent
REPO_ROOT = BENCH_DIR.parent
set_log_prefix("cluster-bench")


def deployment(name: str, replicas: int, wasm: Path, path: str) -> str:
    return f"""apiVersion: hearth.dev/v1alpha1
kind: WorkloadDeployment
metadata:
  name: {name}
spec:
  replicas: {replicas}
  template:
    spec:
      components:
        - name: hello
          image: {wasm}
          http: {{ path: {path} }}
"""


class Cluster:
    """NATS, three hosts and a controller; every process pinned to the server CPU."""

    def __init__(self, args, tmp: Path) -> None:
        self.args = args
        self.tmp = tmp
        self.nats_port = free_port()
        self.url = f"nats://{HOST}:{self.nats_port}"
        self.nats = Process(
            "nats",
            pinned([str(args.nats), "-js", "-a", HOST, "-p", str(self.nats_port), "-sd", str(tmp / "js")]),
            tmp / "nats.log",
        )
        wait_port(self.nats_port, self.nats)
        self.http = {}
        self.hosts = {}
        for i in (1, 2, 3):
            self.start_host(f"h{i}")
        self.controller = Process(
            "controller",
            pinned([str(args.hearth), "controller", "--nats", self.url, "--id", "bench"]),
            tmp / "controller.log",
        )
        deadline = time.monotonic() + 60
        while self.cli("get", "deployments").returncode != 0:
            if time.monotonic() > deadline:
                raise BenchError("the cluster store never answered")
            time.sleep(0.2)

    def start_host(self, host_id: str) -> None:
        port = self.http.get(host_id) or free_port()
        self.http[host_id] = port
        argv = [
            str(self.args.hearth), "host", "--nats", self.url, "--host-id", host_id,
            "--http", f"{HOST}:{port}", "--workers", "1", "--max-replicas", "512",
            "--max-instances", "1000", "--cache-dir", str(self.args.cache_dir),
        ]  # fmt: skip
        self.hosts[host_id] = Process(host_id, pinned(argv), self.tmp / f"{host_id}-{time.monotonic_ns()}.log")
        wait_port(port, self.hosts[host_id])

    def cli(self, *argv: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(self.args.hearth), *argv, "--cluster", self.url], capture_output=True, text=True, timeout=60
        )

    def deployments(self) -> list:
        out = self.cli("get", "deployments", "-o", "json")
        if out.returncode != 0:
            return []
        return json.loads(out.stdout)

    def stop(self) -> None:
        for p in [self.controller, *self.hosts.values(), self.nats]:
            p.kill()


def available(d: dict) -> int:
    return int((d.get("status") or {}).get("availableReplicas") or 0)


def ready_placements(d: dict) -> list:
    return [p for p in (d.get("status") or {}).get("placements", []) if p.get("state") == "ready"]


def apply_to_ready(c: Cluster, args, tmp: Path) -> dict:
    wasm = args.guests_dir / "hello.wasm"
    docs = [deployment(f"d{i}", args.replicas, wasm, f"/d{i}") for i in range(args.deployments)]
    manifest = tmp / "many.yaml"
    manifest.write_text("---\n".join(docs))
    want = args.deployments * args.replicas
    log(f"apply: {args.deployments} deployments x {args.replicas} replicas = {want}")
    start = time.perf_counter()
    out = c.cli("apply", "-f", str(manifest))
    applied = time.perf_counter() - start
    if out.returncode != 0:
        raise BenchError(f"apply failed:\n{out.stderr}")
    deadline = start + 120
    ready = 0
    while time.perf_counter() < deadline:
        ready = sum(available(d) for d in c.deployments())
        if ready >= want:
            break
        time.sleep(0.1)
    elapsed = time.perf_counter() - start
    if ready < want:
        raise BenchError(f"only {ready}/{want} replicas ready after {elapsed:.1f} s")
    per_host = {}
    for d in c.deployments():
        for p in ready_placements(d):
            per_host[p["host"]] = per_host.get(p["host"], 0) + 1
    log(f"  {want} replicas ready in {elapsed:.2f} s (apply command {applied:.2f} s); per host {per_host}")
    for i in range(args.deployments):
        c.cli("delete", f"d{i}")
    return {"replicas": want, "ready_s": elapsed, "apply_command_s": applied, "per_host": per_host}


def reschedule(c: Cluster, args) -> dict:
    wasm = args.guests_dir / "hello.wasm"
    manifest = Path(c.tmp) / "one.yaml"
    manifest.write_text(deployment("one", 1, wasm, "/one"))
    c.cli("apply", "-f", str(manifest))
    times = []
    for r in range(args.rounds):
        victim = None
        deadline = time.monotonic() + 60
        while victim is None and time.monotonic() < deadline:
            d = next((d for d in c.deployments() if d["name"] == "one"), {})
            placed = ready_placements(d)
            if len(placed) == 1 and available(d) == 1:
                victim = placed[0]["host"]
            else:
                time.sleep(0.1)
        if victim is None:
            raise BenchError("the one-replica deployment never became ready")
        c.hosts[victim].kill()
        killed = time.perf_counter()
        elsewhere = None
        while time.perf_counter() - killed < 60:
            d = next((d for d in c.deployments() if d["name"] == "one"), {})
            placed = [p for p in ready_placements(d) if p["host"] != victim]
            if placed:
                elsewhere = time.perf_counter() - killed
                break
            time.sleep(0.1)
        if elsewhere is None:
            raise BenchError(f"round {r + 1}: no replacement within 60 s")
        log(f"  round {r + 1}: killed {victim}; ready elsewhere after {elsewhere:.2f} s")
        times.append(elsewhere)
        c.start_host(victim)
        time.sleep(1.5)
    c.cli("delete", "one")
    return {"rounds": times, "median_s": statistics.median(times), "max_s": max(times)}


def forwarding(c: Cluster, args) -> dict:
    wasm = args.guests_dir / "hello.wasm"
    manifest = Path(c.tmp) / "fwd.yaml"
    manifest.write_text(deployment("fwd", 1, wasm, "/"))
    c.cli("apply", "-f", str(manifest))
    runs_on = None
    deadline = time.monotonic() + 60
    while runs_on is None and time.monotonic() < deadline:
        d = next((d for d in c.deployments() if d["name"] == "fwd"), {})
        placed = ready_placements(d)
        runs_on = placed[0]["host"] if placed else None
        time.sleep(0.1)
    if runs_on is None:
        raise BenchError("the forwarding deployment never became ready")
    other = next(h for h in c.http if h != runs_on)
    # Peers learn of the replica from its host's next heartbeat.
    deadline = time.monotonic() + 10
    while http_get_status(c.http[other], 2.0) != 200:
        if time.monotonic() > deadline:
            raise BenchError("the forwarding host never answered 200")
        time.sleep(0.1)
    results = {}
    for conns in (1, 32):
        for label, port in (("direct", c.http[runs_on]), ("forwarded", c.http[other])):
            r = run_wrk(args.wrk, port, conns, args.duration)
            results[f"{label}_c{conns}"] = r
            log(f"  {label:9} c={conns:<3} {r['rps']:>9.0f} req/s  p50 {r['p50_us']:>7.0f} us  p99 {r['p99_us']:>7.0f} us {wrk_notes(r)}")
    if args.native and args.native.exists():
        port = free_port()
        native = Process("native", pinned([str(args.native), f"{HOST}:{port}"]), Path(c.tmp) / "native.log")
        try:
            wait_port(port, native)
            r = run_wrk(args.wrk, port, 1, args.duration)
            results["native_c1"] = r
            log(f"  native    c=1   p50 {r['p50_us']:.0f} us (one loopback HTTP round trip)")
        finally:
            native.kill()
    c.cli("delete", "fwd")
    return results


def body(args, tmp: Path) -> dict:
    c = Cluster(args, tmp)
    try:
        out = {"apply": apply_to_ready(c, args, tmp)}
        out["reschedule"] = reschedule(c, args)
        out["forwarding"] = forwarding(c, args)
    finally:
        c.stop()
    f = out["forwarding"]
    added = f["forwarded_c1"]["p50_us"] - f["direct_c1"]["p50_us"]
    print()
    print(f"apply to ready: {out['apply']['replicas']} replicas in {out['apply']['ready_s']:.2f} s")
    r = out["reschedule"]
    print(f"reschedule after kill -9: median {r['median_s']:.2f} s, max {r['max_s']:.2f} s ({len(r['rounds'])} rounds)")
    line = f"forwarding at 1 connection adds {added:.0f} us to p50"
    if "native_c1" in f:
        line += f" (one loopback HTTP round trip: {f['native_c1']['p50_us']:.0f} us)"
    print(line)
    print(
        f"forwarding at 32 connections: {f['forwarded_c32']['rps']:.0f} vs {f['direct_c32']['rps']:.0f} req/s direct "
        f"({f['forwarded_c32']['rps'] / f['direct_c32']['rps']:.2f}x)"
    )
    return out


def check_inputs(args) -> None:
    for what, path in (("hearth", args.hearth), ("nats-server", args.nats)):
        if not path.exists():
            raise BenchError(f"{what} not found at {path}")
    if not (args.guests_dir / "hello.wasm").exists():
        raise BenchError(f"no hello.wasm in {args.guests_dir}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--hearth", type=Path, default=REPO_ROOT / "target/release/hearth")
    p.add_argument("--nats", type=Path, default=REPO_ROOT / ".tools/venv/bin/nats-server")
    p.add_argument("--native", type=Path, default=REPO_ROOT / "target/release/native-hello")
    p.add_argument("--guests-dir", type=Path, default=REPO_ROOT / "guests/target/wasm32-wasip2/release")
    p.add_argument("--cache-dir", type=Path, default=BENCH_DIR / ".cache/hearth-cache")
    p.add_argument("--wrk", default="wrk")
    p.add_argument("--deployments", type=int, default=100)
    p.add_argument("--replicas", type=int, default=3)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--duration", type=float, default=5.0, help="seconds per wrk run")
    p.add_argument("--output", type=Path, default=BENCH_DIR / "results/cluster-latest.json")
    args = p.parse_args()
    plan = (
        f"{args.deployments}x{args.replicas} replicas apply-to-ready; {args.rounds} kill -9 reschedules; "
        f"forwarding wrk {args.duration:g}s at 1 and 32 connections"
    )
    result = run_driver(args, check_inputs, plan, "hearth-cluster-bench-", body)
    if isinstance(result, int):
        return result
    info, out = result
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({"machine": info, "results": out}, indent=2))
    log(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
