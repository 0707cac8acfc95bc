#!/usr/bin/env python3
"""HTTP benchmark driver for hearth (stdlib only, Python 3.11).

Compares servers that all answer `GET /` with `200 hello from hearth\\n`:

  native             a hyper server on a current-thread tokio runtime (the ceiling)
  wasmtime-serve     `wasmtime serve` running the hello component
  hearth             `hearth run --http` running the same component (metrics recorded,
                     tracing off: the defaults)
  hearth-baseline    another hearth binary (`--baseline PATH`, e.g. an earlier commit's
                     build) serving the same: what a change costs, side by side
  hearth-no-metrics  the same with `--no-metrics`: what recording metrics costs
  hearth-traces      the same with `--otlp-endpoint` to a sink in this driver: every
                     request traced (100 % sampling) and exported as OTLP

Each server is pinned to core 1 and wrk to core 0. Throughput and latency are
measured with wrk at each connection count; cold start (process spawn to first
200) is measured for hearth and wasmtime serve.

Usually run through `bench/http`, which installs and builds what is needed.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import select
import shutil
import socket
import statistics
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from common import (
    CLIENT_CPU,
    HOST,
    SERVER_CPU,
    BenchError,
    Process,
    fmt_duration,
    free_port,
    http_get_status,
    log,
    raise_if_missing,
    read_status,
    request_bytes,
    run_driver,
    run_wrk,
    set_log_prefix,
    write_results,
    wrk_notes,
)

SERVERS = ("native", "wasmtime-serve", "hearth", "hearth-baseline", "hearth-no-metrics", "hearth-traces")
HEARTHS = ("hearth", "hearth-baseline", "hearth-no-metrics", "hearth-traces")
COLD_START_SERVERS = ("wasmtime-serve", "hearth")
ALIASES = {"wasmtime": "wasmtime-serve", "wasmtime_serve": "wasmtime-serve"}

READY_TIMEOUT_S = 120.0  # a first hearth/wasmtime start may compile the component
POLL_INTERVAL_S = 0.0002  # ~200 µs between connect attempts during cold start

BENCH_DIR = Path(__file__).resolve().parent.parent
REPO_ROOT = BENCH_DIR.parent

set_log_prefix("http-bench")


# ---------------------------------------------------------------------------
# Servers


@dataclass
class ServerSpec:
    name: str
    argv_for_port: object  # Callable[[int], list[str]]
    env: dict = field(default_factory=dict)

    def argv(self, port: int) -> list[str]:
        return ["taskset", "-c", SERVER_CPU, *self.argv_for_port(port)]  # type: ignore[operator]


def write_manifest(dir_: Path, wasm: Path) -> Path:
    manifest = dir_ / "bench.yaml"
    manifest.write_text(
        "apiVersion: hearth.dev/v1alpha1\n"
        "kind: Workload\n"
        "metadata:\n"
        "  name: bench\n"
        "spec:\n"
        "  components:\n"
        "    - name: hello\n"
        f"      image: {json.dumps(str(wasm.resolve()))}\n"
        "      http: {}\n"
        "      limits: { maxConcurrency: 1000 }\n"
    )
    return manifest


def make_specs(args: argparse.Namespace, tmp: Path, sink: TraceSink | None = None) -> dict[str, ServerSpec]:
    specs: dict[str, ServerSpec] = {}
    native = str(args.native)
    specs["native"] = ServerSpec("native", lambda p: [native, f"{HOST}:{p}"])
    wasm = str(args.hello_wasm.resolve())
    if args.wasmtime:
        wt = str(args.wasmtime)
        specs["wasmtime-serve"] = ServerSpec(
            "wasmtime-serve", lambda p: [wt, "serve", "-Scli", "--addr", f"{HOST}:{p}", wasm]
        )
    hearth = str(args.hearth)
    manifest = str(write_manifest(tmp, args.hello_wasm))
    cache_dir = str(args.cache_dir.resolve())
    def hearth_run(name: str, *extra: str) -> ServerSpec:
        return ServerSpec(
            name,
            lambda p: [hearth, "run", "--http", f"{HOST}:{p}", "--cache-dir", cache_dir, *extra, manifest],
            env={"RUST_LOG": "warn"},
        )

    specs["hearth"] = hearth_run("hearth")
    if args.baseline:
        baseline = str(args.baseline)
        specs["hearth-baseline"] = ServerSpec(
            "hearth-baseline",
            lambda p: [baseline, "run", "--http", f"{HOST}:{p}", "--cache-dir", cache_dir, manifest],
            env={"RUST_LOG": "warn"},
        )
    specs["hearth-no-metrics"] = hearth_run("hearth-no-metrics", "--no-metrics")
    if sink is not None:
        specs["hearth-traces"] = hearth_run("hearth-traces", "--otlp-endpoint", f"http://{HOST}:{sink.port}")
    return specs


class TraceSink:
    """An OTLP/HTTP receiver that takes every export and answers it at once: counts the
    batches and bytes, decodes nothing (the spans' content is the trace tests' business)."""

    def __init__(self) -> None:
        sink = self
        self.batches = 0
        self.bytes = 0

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 (the stdlib's name)
                n = int(self.headers.get("content-length") or 0)
                self.rfile.read(n)
                sink.batches += 1
                sink.bytes += n
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *_: object) -> None:
                pass

        self.server = ThreadingHTTPServer((HOST, 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Server(Process):
    """A running, pinned server process with its stderr/stdout going to a log file."""

    def __init__(self, spec: ServerSpec, port: int, log_dir: Path, tag: str = "") -> None:
        self.spec = spec
        self.port = port
        super().__init__(spec.name, spec.argv(port), log_dir / f"{spec.name}{tag}.log", spec.env)

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> None:
        """Poll `GET /` until it answers 200."""
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            self.check_alive()
            status = http_get_status(self.port, timeout=2.0)
            if status == 200:
                return
            if status is not None:
                last = f"status {status}"
            time.sleep(0.05)
        self.stop()
        raise BenchError(f"{self.spec.name} not ready after {timeout:.0f}s ({last}); its output:\n{self.log_tail()}")


# ---------------------------------------------------------------------------
# Cold start


def first_200(server: Server, timeout: float = READY_TIMEOUT_S) -> float:
    """Poll as fast as possible until `GET /` answers 200; ms since just before Popen."""
    port = server.port
    req = request_bytes(port)
    deadline = time.monotonic() + timeout
    attempts = 0
    while time.monotonic() < deadline:
        attempts += 1
        if attempts % 256 == 0:
            server.check_alive()
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.setblocking(False)
            err = s.connect_ex((HOST, port))
            if err == errno.EINPROGRESS:
                _, writable, _ = select.select([], [s], [], 1.0)
                err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) if writable else errno.ETIMEDOUT
            if err != 0:
                s.close()
                time.sleep(POLL_INTERVAL_S)
                continue
            s.setblocking(True)
            s.settimeout(10.0)
            s.sendall(req)
            status = read_status(s)
            if status == 200:
                return (time.perf_counter() - server.start_time) * 1e3
        except OSError:
            pass  # reset while starting up: try again
        finally:
            s.close()
        time.sleep(POLL_INTERVAL_S)
    server.check_alive()
    raise BenchError(f"{server.spec.name}: no 200 within {timeout:.0f}s; its output:\n{server.log_tail()}")


def cold_start(spec: ServerSpec, rounds: int, log_dir: Path) -> dict:
    # One discarded run fills the compile cache.
    log(f"cold start: {spec.name}: warming compile cache")
    warm = Server(spec, free_port(), log_dir, "-cold-warm")
    try:
        first_200(warm)
    finally:
        warm.kill()
    samples = []
    for i in range(rounds):
        srv = Server(spec, free_port(), log_dir, "-cold")
        try:
            samples.append(first_200(srv))
        finally:
            srv.kill()
    log(f"cold start: {spec.name}: median {statistics.median(samples):.1f} ms over {rounds} runs")
    return {
        "runs": rounds,
        "median_ms": statistics.median(samples),
        "min_ms": min(samples),
        "max_ms": max(samples),
        "samples_ms": [round(x, 3) for x in samples],
    }


# ---------------------------------------------------------------------------
# Driver


def bench_server(spec: ServerSpec, args: argparse.Namespace, log_dir: Path) -> list[dict]:
    port = free_port()
    log(f"{spec.name}: starting on {HOST}:{port} (pinned to CPU {SERVER_CPU})")
    server = Server(spec, port, log_dir)
    rows = []
    try:
        server.wait_ready()
        log(f"{spec.name}: warm-up ({fmt_duration(args.warmup)} of wrk)")
        run_wrk(args.wrk, port, max(args.connections), args.warmup)
        for c in args.connections:
            log(f"{spec.name}: wrk -c{c} -d{fmt_duration(args.duration)}")
            cpu_before = cpu_seconds(server.proc.pid)
            r = run_wrk(args.wrk, port, c, args.duration)
            cpu = cpu_seconds(server.proc.pid) - cpu_before
            # CPU time the server spent per request: unlike req/s, time the hypervisor gave
            # to other guests does not count, so it holds still on a shared VM.
            r["cpu_us_per_request"] = cpu * 1e6 / r["requests"] if r.get("requests") else None
            if r["non_2xx"] or any(r["socket_errors"].values()):
                log(f"{spec.name}: WARNING: non-2xx {r['non_2xx']}, socket errors {r['socket_errors']}")
            rows.append({"server": spec.name, "connections": c, **r})
            server.check_alive()
    finally:
        server.stop()
    return rows


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of process `pid` (all its threads) so far, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of proc(5)
    return (utime + stime) / os.sysconf("SC_CLK_TCK")


def medians(rows: list[dict]) -> list[dict]:
    """One row per (server, connections): the round with the median req/s (its latencies
    with it), and every round's req/s. On a noisy machine one 10 s run of one server
    against one of another says little; rounds that interleave the servers say more."""
    groups: dict[tuple[str, int], list[dict]] = {}
    for r in rows:
        groups.setdefault((r["server"], r["connections"]), []).append(r)
    out = []
    for (server, conns), runs in groups.items():
        ordered = sorted(runs, key=lambda r: r["rps"])
        median = dict(ordered[(len(ordered) - 1) // 2])
        median.pop("round", None)
        median["rounds_rps"] = [round(r["rps"]) for r in runs]
        cpu = sorted(r["cpu_us_per_request"] for r in runs if r.get("cpu_us_per_request"))
        median["cpu_us_per_request"] = cpu[(len(cpu) - 1) // 2] if cpu else None
        median["rounds_cpu_us_per_request"] = [round(r.get("cpu_us_per_request") or 0, 1) for r in runs]
        out.append(median)
    return out


def ratios(rows: list[dict], connections: list[int]) -> list[dict]:
    by = {(r["server"], r["connections"]): r["rps"] for r in rows}
    out = []
    for c in connections:
        h = by.get(("hearth", c))
        if h is None:
            continue
        entry: dict = {"connections": c}
        for other, key in (("wasmtime-serve", "hearth_over_wasmtime_serve"), ("native", "hearth_over_native")):
            o = by.get((other, c))
            entry[key] = (h / o) if o else None
        # What observability costs in throughput: metrics against none, tracing against
        # the default (metrics on, tracing off).
        bare = by.get(("hearth-no-metrics", c))
        traced = by.get(("hearth-traces", c))
        entry["metrics_cost"] = (1 - h / bare) if bare else None
        entry["tracing_cost"] = (1 - traced / h) if traced else None
        # The same from CPU time per request: extra CPU each request needs.
        cpu = {(r["server"], r["connections"]): r.get("cpu_us_per_request") for r in rows}
        h_cpu, bare_cpu, traced_cpu = (cpu.get((n, c)) for n in ("hearth", "hearth-no-metrics", "hearth-traces"))
        entry["metrics_cpu_cost"] = (h_cpu / bare_cpu - 1) if h_cpu and bare_cpu else None
        entry["tracing_cpu_cost"] = (traced_cpu / h_cpu - 1) if h_cpu and traced_cpu else None
        out.append(entry)
    return out


def cpu_text(us: float | None) -> str:
    return f"{us:,.1f}" if us else "-"


def print_report(info: dict, rows: list[dict], ratio_rows: list[dict], cold: dict) -> None:
    print()
    print("Throughput and latency (wrk -t1, server on CPU 1, wrk on CPU 0)")
    print(f"{'server':<18} {'conns':>6} {'req/s':>12} {'p50 µs':>10} {'p99 µs':>10} {'CPU µs/req':>11}  notes")
    for r in rows:
        spread = ""
        if len(r.get("rounds_rps", [])) > 1:
            spread = "rounds " + "/".join(f"{x:,}" for x in r["rounds_rps"]) + " "
        print(
            f"{r['server']:<18} {r['connections']:>6} {r['rps']:>12,.0f} "
            f"{r['p50_us']:>10,.0f} {r['p99_us']:>10,.0f} {cpu_text(r.get('cpu_us_per_request')):>11}  {spread}{wrk_notes(r)}"
        )
    if ratio_rows:
        print()
        print("req/s ratios")
        print(
            f"{'conns':>6} {'hearth/wasmtime-serve':>22} {'hearth/native':>14} {'metrics cost':>13} {'tracing cost':>13}"
            f" {'metrics CPU':>12} {'tracing CPU':>12}"
        )
        ratio = lambda v: f"{v:.2f}" if v is not None else "-"  # noqa: E731
        share = lambda v: f"{v * 100:+.1f}%" if v is not None else "-"  # noqa: E731
        for e in ratio_rows:
            print(
                f"{e['connections']:>6} {ratio(e['hearth_over_wasmtime_serve']):>22} {ratio(e['hearth_over_native']):>14} "
                f"{share(e['metrics_cost']):>13} {share(e['tracing_cost']):>13}"
                f" {share(e['metrics_cpu_cost']):>12} {share(e['tracing_cpu_cost']):>12}"
            )
    if cold:
        print()
        print("Cold start (spawn to first 200, warm compile cache)")
        print(f"{'server':<16} {'runs':>5} {'median ms':>10} {'min ms':>8}")
        for name, c in cold.items():
            print(f"{name:<16} {c['runs']:>5} {c['median_ms']:>10.1f} {c['min_ms']:>8.1f}")
    print()


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--native", type=Path, default=REPO_ROOT / "target/release/native-hello", help="native-hello binary")
    p.add_argument("--hearth", type=Path, default=REPO_ROOT / "target/release/hearth", help="hearth binary")
    p.add_argument("--wasmtime", type=Path, default=None, help="wasmtime binary (for `wasmtime serve`)")
    p.add_argument(
        "--baseline",
        type=Path,
        default=None,
        help="another hearth binary (e.g. an earlier commit's) served as `hearth-baseline`, to measure a change side by side",
    )
    p.add_argument(
        "--hello-wasm",
        type=Path,
        default=REPO_ROOT / "guests/target/wasm32-wasip2/release/hello.wasm",
        help="the hello component",
    )
    p.add_argument("--cache-dir", type=Path, default=BENCH_DIR / ".cache/hearth-cache", help="hearth --cache-dir")
    p.add_argument("--wrk", default="wrk", help="wrk binary")
    p.add_argument("--duration", type=float, default=10.0, help="seconds per wrk run (default 10)")
    p.add_argument("--warmup", type=float, default=2.0, help="seconds of wrk warm-up per server (default 2)")
    p.add_argument("--connections", default="1,64", help="comma-separated connection counts (default 1,64)")
    p.add_argument(
        "--only",
        default=",".join(s for s in SERVERS if s != "hearth-baseline"),
        help=f"comma-separated subset of {','.join(SERVERS)}",
    )
    p.add_argument("--no-cold-start", action="store_true", help="skip the cold-start measurement")
    p.add_argument("--cold-start-runs", type=int, default=20, help="cold-start rounds per server (default 20)")
    p.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="measure every server this many times, interleaved, and report each one's median round (default 1)",
    )
    p.add_argument(
        "--output", type=Path, default=BENCH_DIR / "results/http-latest.json", help="where to write the JSON results"
    )
    args = p.parse_args(argv)

    try:
        args.connections = [int(c) for c in args.connections.split(",") if c.strip()]
    except ValueError:
        p.error(f"--connections: expected comma-separated integers, got {args.connections!r}")
    if not args.connections or any(c < 1 for c in args.connections):
        p.error("--connections: expected positive integers")
    if args.rounds < 1:
        p.error("--rounds: expected 1 or more")
    if args.duration <= 0 or args.warmup < 0:
        p.error("--duration must be positive and --warmup non-negative")
    only = []
    for name in (n.strip() for n in args.only.split(",") if n.strip()):
        name = ALIASES.get(name, name)
        if name not in SERVERS:
            p.error(f"--only: unknown server {name!r}; expected some of {','.join(SERVERS)}")
        if name not in only:
            only.append(name)
    if not only:
        p.error("--only: no servers selected")
    if args.baseline and "hearth-baseline" not in only:
        only.append("hearth-baseline")
    if "hearth-baseline" in only and not args.baseline:
        if "hearth-baseline" in args.only:
            p.error("--only hearth-baseline needs --baseline PATH")
        only.remove("hearth-baseline")
    args.only = [s for s in SERVERS if s in only]  # keep the canonical order
    return args


def check_inputs(args: argparse.Namespace) -> None:
    missing = []
    for tool in ("taskset", args.wrk):
        if shutil.which(tool) is None:
            missing.append(f"`{tool}` not found on PATH")
    if "native" in args.only and not os.access(args.native, os.X_OK):
        missing.append(f"native server not found at {args.native} (cargo build --release -p hearth-bench-native)")
    if set(HEARTHS) & set(args.only) and not os.access(args.hearth, os.X_OK):
        missing.append(f"hearth not found at {args.hearth} (cargo build --release -p hearth-cli)")
    if "wasmtime-serve" in args.only:
        if args.wasmtime is None and (found := shutil.which("wasmtime")):
            args.wasmtime = Path(found)
        if not args.wasmtime or not os.access(args.wasmtime, os.X_OK):
            missing.append(
                f"wasmtime not found{f' at {args.wasmtime}' if args.wasmtime else ''}: pass --wasmtime PATH, "
                "run bench/http (it installs wasmtime-cli 48.0.8), or skip it with --only native,hearth"
            )
    if {*HEARTHS, "wasmtime-serve"} & set(args.only) and not args.hello_wasm.is_file():
        missing.append(f"hello component not found at {args.hello_wasm} (cd guests && cargo build --release)")
    if (os.cpu_count() or 1) < 2:
        missing.append("the pinning scheme needs at least 2 CPUs (server on CPU 1, wrk on CPU 0)")
    raise_if_missing(missing)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    cold_servers = [s for s in args.only if s in COLD_START_SERVERS]
    cold_plan = "off" if args.no_cold_start or not cold_servers else f"{args.cold_start_runs} runs"
    plan = (
        f"servers={','.join(args.only)} connections={','.join(map(str, args.connections))} "
        f"duration={args.duration:g}s warmup={args.warmup:g}s cold-start={cold_plan}"
    )

    def body(args, tmp: Path) -> tuple[list[dict], dict]:
        sink = TraceSink() if "hearth-traces" in args.only else None
        try:
            specs = make_specs(args, tmp, sink)
            rows: list[dict] = []
            cold: dict = {}
            for round_ in range(1, args.rounds + 1):
                if args.rounds > 1:
                    log(f"round {round_} of {args.rounds}")
                for name in args.only:
                    before = (sink.batches, sink.bytes) if sink else (0, 0)
                    got = bench_server(specs[name], args, tmp)
                    if name == "hearth-traces" and sink:
                        batches, size = sink.batches - before[0], sink.bytes - before[1]
                        log(f"{name}: the sink took {batches} OTLP exports, {size / 1e6:.1f} MB")
                        for row in got:
                            row["otlp_exports"], row["otlp_bytes"] = batches, size
                    for row in got:
                        row["round"] = round_
                    rows.extend(got)
            if not args.no_cold_start:
                for name in args.only:
                    if name in COLD_START_SERVERS:
                        cold[name] = cold_start(specs[name], args.cold_start_runs, tmp)
            return rows, cold
        finally:
            if sink:
                sink.close()

    wasmtime = args.wasmtime if "wasmtime-serve" in args.only else None
    got = run_driver(args, check_inputs, plan, "hearth-http-bench-", body, wasmtime)
    if isinstance(got, int):
        return got
    info, (rows, cold) = got

    all_rounds = rows
    rows = medians(rows)
    ratio_rows = ratios(rows, args.connections)
    print_report(info, rows, ratio_rows, cold)

    result = {
        "machine": info,
        "config": {
            "servers": args.only,
            "connections": args.connections,
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "server_cpu": int(SERVER_CPU),
            "client_cpu": int(CLIENT_CPU),
            "wrk_threads": 1,
            "cold_start_runs": args.cold_start_runs if cold else None,
            "rounds": args.rounds,
        },
        "throughput": rows,
        "rounds": all_rounds if args.rounds > 1 else None,
        "ratios": ratio_rows,
        "cold_start": cold,
    }
    write_results(args.output, result)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
