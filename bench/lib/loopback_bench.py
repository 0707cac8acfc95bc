#!/usr/bin/env python3
"""Loopback benchmark driver for hearth (stdlib only, Python 3.11).

Inside a hearth workload, 127.0.0.1 is the workload's service, reached through
in-memory pipes. This compares that with the same components talking over the
kernel's loopback TCP under wasmtime, in three parts:

  cache    HTTP -> cache-http component -> new TCP connection per request ->
           cache-service. hearth (one workload) vs `wasmtime serve` +
           `wasmtime run` (kernel loopback). wrk -t1 -c16 on GET /incr/k.
  net      One connection from the net-bench component to the echo service:
           64-byte round-trip latency and bulk echo throughput, hearth's
           virtual pipe vs kernel loopback (both guests under wasmtime).
  restart  How long hearth takes to bring a crashed service back to listening
           (crashy-service, MODE=trap), backoff excluded. hearth only.

Every server process is pinned to CPU 1 (`taskset -c 1`; hearth with
`--workers 1`) and wrk to CPU 0. Only 127.0.0.1 is used. With `--workers N`
(N > 1), the cache part runs hearth twice on the same CPUs (`--server-cpus`):
its services on the workers, with their connections steered there (the
default), and `--service-threads` (a thread per service, connections on any
worker), to show what the cross-thread wake-ups cost.

Usually run through `bench/loopback`, which installs and builds what is needed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

from common import (
    CLIENT_CPU,
    HOST,
    SERVER_CPU,
    BenchError,
    Process,
    fmt_duration,
    free_port,
    http_get,
    log,
    pinned,
    port_is_free,
    raise_if_missing,
    run_driver,
    run_wrk,
    set_log_prefix,
    write_results,
    wrk_notes,
)

SECTIONS = ("cache", "net", "restart")

READY_TIMEOUT_S = 120.0  # a first start may compile the components
CACHE_PORT_IN_WORKLOAD = 6380  # the cache service's port inside the hearth workload
ECHO_PORT = 7070  # guests/echo hard-codes 127.0.0.1:7070
CRASHY_PORT = 7171
CRASHY_AFTER_MS = 200

# Targets from the issue; no run fails on them, they are only reported.
TARGET_CACHE_RATIO = 5.0  # hearth req/s >= 5x the wasmtime pair
TARGET_RTT_RATIO = 0.5  # hearth µs per round trip <= 0.5x kernel loopback
TARGET_BULK_RATIO = 1.0  # hearth MiB/s >= 1x kernel loopback
TARGET_RESTART_MS = 5.0  # crash to listening again, backoff excluded

BENCH_DIR = Path(__file__).resolve().parent.parent
REPO_ROOT = BENCH_DIR.parent

set_log_prefix("loopback-bench")


# ---------------------------------------------------------------------------
# Processes


class Hearth(Process):
    """`hearth run --workers N` (default 1) pinned to the server CPUs, with an admin API."""

    def __init__(
        self,
        args: argparse.Namespace,
        name: str,
        manifest: Path,
        log_dir: Path,
        extra: tuple[str, ...] = (),
        env: dict | None = None,
    ) -> None:
        self.http_port = free_port()
        self.admin_port = free_port()
        argv = [
            str(args.hearth), "run", "--workers", str(args.workers),
            "--http", f"{HOST}:{self.http_port}", "--admin", f"{HOST}:{self.admin_port}",
            "--cache-dir", str(args.cache_dir.resolve()), *extra, str(manifest),
        ]  # fmt: skip
        super().__init__(
            name, pinned(argv, args.server_cpus), log_dir / f"{name}.log", {"RUST_LOG": "warn", **(env or {})}
        )

    def service(self, workload: str) -> dict | None:
        """The workload's `service` block from `GET /v1/workloads`, or None."""
        try:
            status, body = http_get(self.admin_port, "/v1/workloads", timeout=2.0)
            if status != 200:
                return None
            for w in json.loads(body):
                if w.get("name") == workload:
                    return w.get("service")
        except (OSError, ValueError):
            pass
        return None

    def wait_listening(self, workload: str, port: int, timeout: float = READY_TIMEOUT_S) -> None:
        """Waits until the admin API shows the service running and listening on `port`."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            self.check_alive()
            last = self.service(workload)
            if last and last.get("state") == "running" and port in last.get("listening", []):
                return
            time.sleep(0.05)
        raise BenchError(
            f"{self.name}: service of {workload} not listening on {port} after {timeout:.0f}s "
            f"(last status {last}); its output:\n{self.log_tail()}"
        )


def wasmtime_service(
    args: argparse.Namespace, name: str, wasm: str, env: dict, ready_line: str, log_dir: Path
) -> Process:
    """`wasmtime run -Sinherit-network -Stcp` of a service, pinned; waits for `ready_line`."""
    argv = [str(args.wasmtime), "run", "-Sinherit-network", "-Stcp", *env_flags(env), wasm]
    proc = Process(name, pinned(argv), log_dir / f"{name}.log")
    deadline = time.monotonic() + READY_TIMEOUT_S
    while ready_line not in proc.log_text():
        if time.monotonic() > deadline:
            proc.stop()
            raise BenchError(f"{name} did not print {ready_line!r}; its output:\n{proc.log_tail()}")
        proc.check_alive()
        time.sleep(0.02)
    return proc


def wasmtime_serve(args: argparse.Namespace, name: str, wasm: str, env: dict, log_dir: Path) -> tuple[Process, int]:
    """`wasmtime serve -Scli -Sinherit-network -Stcp` of an HTTP component, pinned; waits for HTTP."""
    port = free_port()
    argv = [
        str(args.wasmtime), "serve", "-Scli", "-Sinherit-network", "-Stcp", *env_flags(env),
        "--addr", f"{HOST}:{port}", wasm,
    ]  # fmt: skip
    proc = Process(name, pinned(argv), log_dir / f"{name}.log")
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        proc.check_alive()
        try:
            http_get(port, "/", timeout=2.0)  # any status means it is serving
            return proc, port
        except OSError:
            pass
        if time.monotonic() > deadline:
            proc.stop()
            raise BenchError(f"{name} not serving on {port}; its output:\n{proc.log_tail()}")
        time.sleep(0.05)


def env_flags(env: dict) -> list[str]:
    return [f"--env={k}={v}" for k, v in env.items()]


def stop_all(procs: list[Process]) -> None:
    for p in reversed(procs):
        p.stop()


def get_ok(port: int, path: str, timeout: float) -> str:
    """`GET path`, which must answer 200; the body, stripped."""
    try:
        status, body = http_get(port, path, timeout)
    except OSError as e:
        raise BenchError(f"GET {path} failed: {e}") from e
    if status != 200:
        raise BenchError(f"GET {path} answered {status}: {body.strip()}")
    return body.strip()


# ---------------------------------------------------------------------------
# Manifests


def wasm_path(args: argparse.Namespace, name: str) -> str:
    return str((args.guests_dir / name).resolve())


def write_manifest(path: Path, name: str, components: str, service: str) -> Path:
    path.write_text(
        "apiVersion: hearth.dev/v1alpha1\n"
        "kind: Workload\n"
        "metadata:\n"
        f"  name: {name}\n"
        "spec:\n" + components + service
    )
    return path


def cache_manifest(args: argparse.Namespace, tmp: Path) -> Path:
    return write_manifest(
        tmp / "cache.yaml",
        "cache",
        "  components:\n"
        "    - name: web\n"
        f"      image: {json.dumps(wasm_path(args, 'cache_http.wasm'))}\n"
        "      http: {}\n"
        f'      env: {{ CACHE_PORT: "{CACHE_PORT_IN_WORKLOAD}" }}\n',
        "  service:\n"
        f"    image: {json.dumps(wasm_path(args, 'cache_service.wasm'))}\n"
        f'    env: {{ CACHE_PORT: "{CACHE_PORT_IN_WORKLOAD}" }}\n'
        f"    ports: [ {{ port: {CACHE_PORT_IN_WORKLOAD} }} ]\n",
    )


def net_manifest(args: argparse.Namespace, tmp: Path) -> Path:
    return write_manifest(
        tmp / "net.yaml",
        "net",
        "  components:\n"
        "    - name: net-bench\n"
        f"      image: {json.dumps(wasm_path(args, 'net_bench.wasm'))}\n"
        "      http: {}\n"
        "      limits: { timeoutMs: 120000 }\n",
        "  service:\n"
        f"    image: {json.dumps(wasm_path(args, 'echo.wasm'))}\n"
        f"    ports: [ {{ port: {ECHO_PORT} }} ]\n",
    )


def crashy_manifest(args: argparse.Namespace, tmp: Path) -> Path:
    return write_manifest(
        tmp / "crashy.yaml",
        "crashy",
        "",
        "  service:\n"
        f"    image: {json.dumps(wasm_path(args, 'crashy_service.wasm'))}\n"
        f'    env: {{ MODE: trap, AFTER_MS: "{CRASHY_AFTER_MS}", PORT: "{CRASHY_PORT}" }}\n'
        f"    ports: [ {{ port: {CRASHY_PORT} }} ]\n"
        "    restart: { policy: always }\n",
    )


# ---------------------------------------------------------------------------
# 1. Cache pair


def cache_load(args: argparse.Namespace, name: str, port: int) -> dict:
    path = "/incr/k"
    get_ok(port, "/ping", timeout=10.0)
    log(f"cache: {name}: warm-up ({fmt_duration(args.warmup)} of wrk)")
    if args.warmup > 0:
        run_wrk(args.wrk, port, args.connections, args.warmup, path)
    before = get_ok(port, "/get/k", timeout=10.0)
    log(f"cache: {name}: wrk -c{args.connections} -d{fmt_duration(args.duration)} {path}")
    r = run_wrk(args.wrk, port, args.connections, args.duration, path)
    after = get_ok(port, "/get/k", timeout=10.0)
    # The service must have counted every request wrk saw answered (and maybe a few in flight at the end).
    r["service_increments"] = counter(after) - counter(before)
    if r["non_2xx"] or any(r["socket_errors"].values()):
        log(f"cache: {name}: WARNING: non-2xx {r['non_2xx']}, socket errors {r['socket_errors']}")
    if r["requests"] is not None and r["service_increments"] < r["requests"] - r["non_2xx"]:
        log(f"cache: {name}: WARNING: the service counted {r['service_increments']} of {r['requests']} requests")
    return r


def counter(reply: str) -> int:
    """`VALUE 123` (or `NIL`, before the first INCR) as a number."""
    parts = reply.split()
    return int(parts[1]) if len(parts) == 2 and parts[0] == "VALUE" else 0


def cache_hearth(args: argparse.Namespace, tmp: Path, extra: tuple[str, ...] = ()) -> dict:
    name = "hearth" + "".join(f" {e}" for e in extra)
    log(f"cache: {name}: starting (pinned to CPUs {args.server_cpus}, --workers {args.workers})")
    h = Hearth(args, "hearth-cache" + "".join(extra), cache_manifest(args, tmp), tmp, extra)
    try:
        h.wait_listening("cache", CACHE_PORT_IN_WORKLOAD)
        r = cache_load(args, name, h.http_port)
        h.check_alive()
        return r
    finally:
        h.stop()


def cache_wasmtime(args: argparse.Namespace, tmp: Path) -> dict:
    cache_port = free_port()
    env = {"CACHE_PORT": str(cache_port)}
    log(f"cache: wasmtime: starting cache_service (run) on {HOST}:{cache_port} and cache_http (serve), both on CPU 1")
    procs: list[Process] = []
    try:
        procs.append(
            wasmtime_service(
                args, "wasmtime-cache-service", wasm_path(args, "cache_service.wasm"), env, "cache listening on", tmp
            )
        )
        serve, port = wasmtime_serve(args, "wasmtime-cache-http", wasm_path(args, "cache_http.wasm"), env, tmp)
        procs.append(serve)
        r = cache_load(args, "wasmtime", port)
        for p in procs:
            p.check_alive()
        return r
    finally:
        stop_all(procs)


def bench_cache(args: argparse.Namespace, tmp: Path) -> dict:
    out: dict = {}
    if args.wasmtime:
        out["wasmtime"] = cache_wasmtime(args, tmp)
    out["hearth"] = cache_hearth(args, tmp)
    w = out.get("wasmtime")
    out["ratio_rps"] = out["hearth"]["rps"] / w["rps"] if w and w["rps"] else None
    if args.workers > 1:
        apart = cache_hearth(args, tmp, ("--service-threads",))
        out["hearth_service_threads"] = apart
        out["ratio_steered_rps"] = out["hearth"]["rps"] / apart["rps"] if apart["rps"] else None
    return out


# ---------------------------------------------------------------------------
# 2. One connection: round trips and bulk


def net_measure(args: argparse.Namespace, name: str, port: int) -> dict:
    rtt_path = f"/rtt/{ECHO_PORT}/{args.rtt_n}"
    bulk_path = f"/bulk/{ECHO_PORT}/{args.bulk_mib}"
    timeout = 130.0
    log(f"net: {name}: warm-up (one {rtt_path}, one /bulk/{ECHO_PORT}/8)")
    get_ok(port, rtt_path, timeout)
    get_ok(port, f"/bulk/{ECHO_PORT}/8", timeout)
    log(f"net: {name}: {args.rtt_requests} x GET {rtt_path}")
    rtt_us = [int(get_ok(port, rtt_path, timeout)) / 1000 for _ in range(args.rtt_requests)]
    log(f"net: {name}: {args.bulk_requests} x GET {bulk_path}")
    bulk = [float(get_ok(port, bulk_path, timeout)) for _ in range(args.bulk_requests)]
    return {
        "rtt_us": statistics.median(rtt_us),
        "rtt_us_samples": [round(x, 3) for x in rtt_us],
        "bulk_mib_s": statistics.median(bulk),
        "bulk_mib_s_samples": bulk,
    }


def net_hearth(args: argparse.Namespace, tmp: Path) -> dict:
    log(f"net: hearth: starting echo service + net-bench (pinned to CPU {SERVER_CPU}, --workers 1)")
    h = Hearth(args, "hearth-net", net_manifest(args, tmp), tmp)
    try:
        h.wait_listening("net", ECHO_PORT)
        r = net_measure(args, "hearth", h.http_port)
        h.check_alive()
        return r
    finally:
        h.stop()


def net_wasmtime(args: argparse.Namespace, tmp: Path) -> dict:
    if not port_is_free(ECHO_PORT):
        raise BenchError(f"{HOST}:{ECHO_PORT} is in use; the echo guest needs it (its port is fixed)")
    log(f"net: wasmtime: starting echo (run) on {HOST}:{ECHO_PORT} and net-bench (serve), both on CPU 1")
    procs: list[Process] = []
    try:
        procs.append(wasmtime_service(args, "wasmtime-echo", wasm_path(args, "echo.wasm"), {}, "Listening on", tmp))
        serve, port = wasmtime_serve(args, "wasmtime-net-bench", wasm_path(args, "net_bench.wasm"), {}, tmp)
        procs.append(serve)
        r = net_measure(args, "wasmtime", port)
        for p in procs:
            p.check_alive()
        return r
    finally:
        stop_all(procs)


def bench_net(args: argparse.Namespace, tmp: Path) -> dict:
    out: dict = {}
    if args.wasmtime:
        out["wasmtime"] = net_wasmtime(args, tmp)
    out["hearth"] = net_hearth(args, tmp)
    w, h = out.get("wasmtime"), out["hearth"]
    out["ratio_rtt"] = h["rtt_us"] / w["rtt_us"] if w and w["rtt_us"] else None
    out["ratio_bulk"] = h["bulk_mib_s"] / w["bulk_mib_s"] if w and w["bulk_mib_s"] else None
    return out


# ---------------------------------------------------------------------------
# 3. Service restart


EXITED = "service exited; restarting after backoff"
RUNNING = "service running"  # logged once the new incarnation is instantiated, before `run`
LISTENING = f"crashy listening on {CRASHY_PORT}"


def parse_events(text: str) -> list[dict]:
    """hearth's JSON log lines that matter here, in order."""
    events = []
    for line in text.splitlines():
        if not line.startswith("{"):
            continue
        try:
            e = json.loads(line)
        except ValueError:
            continue
        if e.get("workload") != "crashy":
            continue
        msg = e.get("message")
        if msg in (EXITED, RUNNING) or (msg == LISTENING and e.get("stream") == "stdout"):
            e["ts"] = dt.datetime.fromisoformat(e["timestamp"])
            events.append(e)
    return events


def restart_samples(events: list[dict]) -> list[dict]:
    """One sample per exit followed by the next incarnation's listening line."""
    samples = []
    pending = running = None
    for e in events:
        if e["message"] == EXITED:
            pending, running = e, None
        elif e["message"] == RUNNING:
            running = e
        elif pending is not None:
            gap_ms = (e["ts"] - pending["ts"]) / dt.timedelta(milliseconds=1)
            sample = {
                "restart": pending.get("restarts", 0) + 1,
                "backoff_ms": pending["backoff_ms"],
                "exit_to_listening_ms": round(gap_ms, 3),
                "restart_ms": round(gap_ms - pending["backoff_ms"], 3),
            }
            if running is not None:
                # Split at "service running": timer overshoot + instantiation, then the guest up to its bind.
                to_running = (running["ts"] - pending["ts"]) / dt.timedelta(milliseconds=1)
                sample["backoff_end_to_running_ms"] = round(to_running - pending["backoff_ms"], 3)
                sample["running_to_listening_ms"] = round(gap_ms - to_running, 3)
            samples.append(sample)
            pending = running = None
    return samples


def restart_run(args: argparse.Namespace, tmp: Path, run: int) -> list[dict]:
    # The guest's stdout lines are logged at info level.
    manifest = crashy_manifest(args, tmp)
    extra = ("--log-format", "json")
    h = Hearth(args, f"hearth-crashy-{run}", manifest, tmp, extra=extra, env={"RUST_LOG": "info"})
    start = time.time()
    end = start + args.restart_window
    try:
        while time.time() < end:
            time.sleep(0.05)
            h.check_alive()
            events = parse_events(h.log_text())
            last = events[-1] if events else None
            # Stop early once the next restart would come after the window.
            if last and last["message"] == EXITED and last["ts"].timestamp() + last["backoff_ms"] / 1000 > end:
                break
    finally:
        h.stop()
    samples = restart_samples(parse_events(h.log_text()))
    if not samples:
        raise BenchError(f"no restart observed in {args.restart_window:g}s; hearth's output:\n{h.log_tail()}")
    return samples


def bench_restart(args: argparse.Namespace, tmp: Path) -> dict:
    samples = []
    for run in range(1, args.restart_runs + 1):
        log(
            f"restart: hearth run {run}/{args.restart_runs}: crashy-service MODE=trap AFTER_MS={CRASHY_AFTER_MS}, "
            f"up to {args.restart_window:g}s"
        )
        got = restart_run(args, tmp, run)
        log(f"restart: run {run}: {len(got)} restarts, " + ", ".join(f"{s['restart_ms']:.2f}" for s in got) + " ms")
        samples.extend({"run": run, **s} for s in got)
    times = [s["restart_ms"] for s in samples]
    return {
        "count": len(times),
        "median_ms": statistics.median(times),
        "max_ms": max(times),
        "min_ms": min(times),
        "samples": samples,
    }


# ---------------------------------------------------------------------------
# Report


def fmt_ratio(x: float | None) -> str:
    return f"{x:.2f}×" if x is not None else "-"


def verdict(ok: bool | None) -> str:
    return "-" if ok is None else ("met" if ok else "NOT met")


def targets(results: dict) -> list[dict]:
    rows = []
    if "cache" in results:
        r = results["cache"]["ratio_rps"]
        rows.append(
            {
                "what": "cache pair req/s, hearth / wasmtime",
                "target": f"≥ {TARGET_CACHE_RATIO:g}×",
                "value": fmt_ratio(r),
                "met": None if r is None else r >= TARGET_CACHE_RATIO,
            }
        )
    if "net" in results:
        r = results["net"]["ratio_rtt"]
        rows.append(
            {
                "what": "round trip, virtual pipe / kernel loopback",
                "target": f"≤ {TARGET_RTT_RATIO:g}×",
                "value": fmt_ratio(r),
                "met": None if r is None else r <= TARGET_RTT_RATIO,
            }
        )
        r = results["net"]["ratio_bulk"]
        rows.append(
            {
                "what": "bulk MiB/s, virtual pipe / kernel loopback",
                "target": f"≥ {TARGET_BULK_RATIO:g}×",
                "value": fmt_ratio(r),
                "met": None if r is None else r >= TARGET_BULK_RATIO,
            }
        )
    if "restart" in results:
        r = results["restart"]
        rows.append(
            {
                "what": "service restart, median (max)",
                "target": f"≤ {TARGET_RESTART_MS:g} ms",
                "value": f"{r['median_ms']:.2f} ms ({r['max_ms']:.2f} ms)",
                "met": r["median_ms"] <= TARGET_RESTART_MS,
            }
        )
    return rows


def print_report(args: argparse.Namespace, results: dict, target_rows: list[dict]) -> None:
    print()
    if "cache" in results:
        c = results["cache"]
        print(
            f"1. Cache pair: HTTP -> component -> new TCP connection per request -> service\n"
            f"   (wrk -t1 -c{args.connections} -d{fmt_duration(args.duration)} GET /incr/k after "
            f"{fmt_duration(args.warmup)} warm-up; servers on CPUs {args.server_cpus}, wrk on CPU {CLIENT_CPU}; "
            f"hearth --workers {args.workers})"
        )
        print(f"   {'contender':<40} {'req/s':>10} {'p50 µs':>9} {'p99 µs':>9}  notes")
        labels = (
            ("wasmtime", "wasmtime serve + run (kernel loopback)"),
            ("hearth", "hearth (virtual pipes)"),
            ("hearth_service_threads", "hearth --service-threads"),
        )
        for key, label in labels:
            if key in c:
                r = c[key]
                print(
                    f"   {label:<40} {r['rps']:>10,.0f} {r['p50_us']:>9,.0f} {r['p99_us']:>9,.0f}  {wrk_notes(r)}"
                )
        print(f"   {'hearth / wasmtime':<40} {fmt_ratio(c['ratio_rps']):>10}")
        if "ratio_steered_rps" in c:
            print(f"   {'hearth / hearth --service-threads':<40} {fmt_ratio(c['ratio_steered_rps']):>10}")
        print()
    if "net" in results:
        n = results["net"]
        print(
            f"2. One connection to the echo service (net-bench component)\n"
            f"   (round trip: 64 B, n={args.rtt_n}, median of {args.rtt_requests}; "
            f"bulk: {args.bulk_mib} MiB in 64 KiB chunks, median of {args.bulk_requests}; all on CPU {SERVER_CPU})"
        )
        print(f"   {'contender':<40} {'µs/round trip':>14} {'MiB/s':>10}")
        for key, label in (("wasmtime", "kernel loopback TCP (wasmtime)"), ("hearth", "virtual pipe (hearth)")):
            if key in n:
                r = n[key]
                print(f"   {label:<40} {r['rtt_us']:>14.2f} {r['bulk_mib_s']:>10,.0f}")
        print(f"   {'hearth / wasmtime':<40} {fmt_ratio(n['ratio_rtt']):>14} {fmt_ratio(n['ratio_bulk']):>10}")
        print()
    if "restart" in results:
        r = results["restart"]
        print(
            f"3. Service restart: crash to listening again, minus backoff\n"
            f"   (crashy-service MODE=trap AFTER_MS={CRASHY_AFTER_MS} in hearth on CPU {SERVER_CPU}; "
            f"{args.restart_runs} run(s) of up to {args.restart_window:g}s)"
        )
        print(f"   {'restarts':>8} {'median ms':>10} {'min ms':>8} {'max ms':>8}")
        print(f"   {r['count']:>8} {r['median_ms']:>10.2f} {r['min_ms']:>8.2f} {r['max_ms']:>8.2f}")
        print()
    if target_rows:
        print("Targets")
        for t in target_rows:
            print(f"   {t['what']:<44} {t['value']:>20}   target {t['target']:<8} {verdict(t['met'])}")
        print()


# ---------------------------------------------------------------------------
# Driver


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--hearth", type=Path, default=REPO_ROOT / "target/release/hearth", help="hearth binary")
    p.add_argument("--wasmtime", type=Path, default=None, help="wasmtime binary (for `wasmtime run` and `serve`)")
    p.add_argument("--no-wasmtime", action="store_true", help="measure hearth only (no ratios)")
    p.add_argument(
        "--guests-dir",
        type=Path,
        default=REPO_ROOT / "guests/target/wasm32-wasip2/release",
        help="directory with the built guest components",
    )
    p.add_argument("--cache-dir", type=Path, default=BENCH_DIR / ".cache/hearth-cache", help="hearth --cache-dir")
    p.add_argument("--wrk", default="wrk", help="wrk binary")
    p.add_argument(
        "--log-dir", type=Path, default=None, help="keep the servers' logs and manifests here (default: a temp dir)"
    )
    p.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated subset of {','.join(SECTIONS)}")
    p.add_argument("--duration", type=int, default=10, help="cache: seconds of measured wrk load (default 10)")
    p.add_argument("--warmup", type=int, default=2, help="cache: seconds of wrk warm-up (default 2)")
    p.add_argument("--connections", type=int, default=16, help="cache: wrk connections (default 16)")
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="hearth --workers (default 1); above 1 the cache part also runs hearth --service-threads",
    )
    p.add_argument(
        "--server-cpus", default=SERVER_CPU, help=f"CPUs hearth is pinned to (taskset -c; default {SERVER_CPU})"
    )
    p.add_argument("--rtt-n", type=int, default=2000, help="net: round trips per request (default 2000)")
    p.add_argument("--rtt-requests", type=int, default=5, help="net: round-trip requests, median taken (default 5)")
    p.add_argument("--bulk-mib", type=int, default=64, help="net: MiB per bulk request (default 64)")
    p.add_argument("--bulk-requests", type=int, default=3, help="net: bulk requests, median taken (default 3)")
    p.add_argument(
        "--restart-window", type=float, default=10.0, help="restart: seconds per hearth run at most (default 10)"
    )
    p.add_argument("--restart-runs", type=int, default=2, help="restart: hearth runs, samples pooled (default 2)")
    p.add_argument(
        "--output",
        type=Path,
        default=BENCH_DIR / "results/loopback-latest.json",
        help="where to write the JSON results",
    )
    args = p.parse_args(argv)

    if args.duration <= 0 or args.warmup < 0 or args.connections < 1 or args.workers < 1:
        p.error("--duration, --connections and --workers must be positive and --warmup non-negative")
    for name in ("rtt_n", "rtt_requests", "bulk_mib", "bulk_requests", "restart_runs"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be positive")
    if args.restart_window <= 0:
        p.error("--restart-window must be positive")
    only = []
    for name in (n.strip() for n in args.only.split(",") if n.strip()):
        if name not in SECTIONS:
            p.error(f"--only: unknown part {name!r}; expected some of {','.join(SECTIONS)}")
        if name not in only:
            only.append(name)
    if not only:
        p.error("--only: nothing selected")
    args.only = [s for s in SECTIONS if s in only]
    return args


def check_inputs(args: argparse.Namespace) -> None:
    missing = []
    for tool in ("taskset", args.wrk):
        if shutil.which(tool) is None:
            missing.append(f"`{tool}` not found on PATH")
    if not os.access(args.hearth, os.X_OK):
        missing.append(f"hearth not found at {args.hearth} (cargo build --release -p hearth-cli)")
    needs_wasmtime = not args.no_wasmtime and {"cache", "net"} & set(args.only)
    if not needs_wasmtime:
        args.wasmtime = None
    else:
        if args.wasmtime is None and (found := shutil.which("wasmtime")):
            args.wasmtime = Path(found)
        if not args.wasmtime or not os.access(args.wasmtime, os.X_OK):
            missing.append(
                f"wasmtime not found{f' at {args.wasmtime}' if args.wasmtime else ''}: pass --wasmtime PATH, "
                "run bench/loopback (it installs wasmtime-cli 48.0.8), or measure hearth alone with --no-wasmtime"
            )
    wasm = {
        "cache": ["cache_http.wasm", "cache_service.wasm"],
        "net": ["net_bench.wasm", "echo.wasm"],
        "restart": ["crashy_service.wasm"],
    }
    for section in args.only:
        for name in wasm[section]:
            if not (args.guests_dir / name).is_file():
                missing.append(f"{name} not found in {args.guests_dir} (cd guests && cargo build --release)")
    if (os.cpu_count() or 1) < 2:
        missing.append("the pinning scheme needs at least 2 CPUs (servers on CPU 1, wrk on CPU 0)")
    raise_if_missing(missing)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    plan = (
        f"parts={','.join(args.only)} wasmtime={'yes' if args.wasmtime else 'no'} "
        f"cache=wrk -c{args.connections} {args.duration}s (+{args.warmup}s warm-up) "
        f"rtt=n{args.rtt_n}x{args.rtt_requests} bulk={args.bulk_mib}MiBx{args.bulk_requests} "
        f"restart={args.restart_runs}x{args.restart_window:g}s"
    )

    def body(args, tmp: Path) -> dict:
        results: dict = {}
        for section, fn in (("cache", bench_cache), ("net", bench_net), ("restart", bench_restart)):
            if section in args.only:
                results[section] = fn(args, tmp)
        return results

    started = time.monotonic()
    got = run_driver(args, check_inputs, plan, "hearth-loopback-bench-", body, args.wasmtime)
    if isinstance(got, int):
        return got
    info, results = got
    log(f"done in {time.monotonic() - started:.0f}s")

    target_rows = targets(results)
    print_report(args, results, target_rows)

    result = {
        "machine": info,
        "config": {
            "parts": args.only,
            "server_cpus": args.server_cpus,
            "client_cpu": int(CLIENT_CPU),
            "hearth_workers": args.workers,
            "wasmtime_flags": {
                "service": "run -Sinherit-network -Stcp",
                "component": "serve -Scli -Sinherit-network -Stcp",
            },
            "cache": {
                "connections": args.connections,
                "duration_s": args.duration,
                "warmup_s": args.warmup,
                "path": "/incr/k",
                "wrk_threads": 1,
            },
            "net": {
                "rtt_message_bytes": 64,
                "rtt_round_trips": args.rtt_n,
                "rtt_requests": args.rtt_requests,
                "bulk_mib": args.bulk_mib,
                "bulk_chunk_kib": 64,
                "bulk_requests": args.bulk_requests,
            },
            "restart": {
                "mode": "trap",
                "after_ms": CRASHY_AFTER_MS,
                "runs": args.restart_runs,
                "window_s": args.restart_window,
            },
        },
        **results,
        "targets": target_rows,
    }
    write_results(args.output, result)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
