#!/usr/bin/env python3
"""Soak driver for hearth (stdlib only, Python 3.11): does anything leak under hours of
mixed traffic?

**One host** (default): `hearth run` with eight workloads (hello; the faults guest with a
16 MiB memory limit, and again with a 100 ms deadline for its endless loop; two crashing
services (`crashy-service`, a trap and a non-zero exit) each probed by a component over the
workload's virtual network; key-value writes on the memory backend; linked calls (types-caller -> types-callee); and a component
using a service over the virtual network (cache-http -> cache-service)), and a mixed load at a
fixed rate for `--minutes` (default 30). See soak_load.py for the mix and what each kind of
request must answer.

**Cluster** (`--cluster`): NATS, three `hearth host`s and a `hearth controller`, the same
workloads as deployments of `--replicas` replicas, the load spread over every live host's
ingress, and a host killed with SIGKILL and restarted every `--kill-every` seconds (h2 and h3
in turn; h1 lives the whole run). An unexpected answer to a request that overlapped the first
`--kill-window` seconds after a kill is counted as "during a kill", not as unexpected.

Every `--interval` seconds it samples each host process's RSS, open fds and threads from
/proc and, from its `/metrics` and `/v1/workloads`, the instances in use, virtual connections
open and services. The first 20 % of the run is warm-up (for a host in a cluster, 20 % of the
run from its start or from the last change of its workloads). At its end (a cluster's: h1's),
and at the end of the run, the load pauses: answers in flight finish, the client closes its connections, and after
`--quiet` seconds every host is sampled once more (the *quiet* samples). Reported: RSS and fd
growth after warm-up (under load and quiet to quiet), the instances in use and virtual
connections in the last quiet sample next to their idle values, and unexpected answers per
kind of request. Results go to bench/results/soak-latest.json (soak-cluster-latest.json).

Usually run through `bench/soak`.
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import shutil
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

from common import HOST, BenchError, Process, free_port, log, run_driver, set_log_prefix, wait_port
from soak_load import Load, proc_sample, scrape, tcp_table
from soak_report import cell, growth, print_report, verdict

BENCH_DIR = Path(__file__).resolve().parent.parent
REPO_ROOT = BENCH_DIR.parent
set_log_prefix("soak")

GUESTS = ("hello", "faults", "tcp_client", "crashy_service", "kv_http", "types_caller", "types_callee",
          "cache_http", "cache_service")  # fmt: skip


# ---------------------------------------------------------------------------
# Workloads


def specs(g: Path) -> dict[str, str]:
    """Each workload's `spec:` body (YAML, indented by 2). Routes are by `Host` (`NAME.soak`)."""

    def crashy(name: str, env: str) -> str:
        return f"""\
  components:
    - name: probe
      image: {g}/tcp_client.wasm
      http: {{ host: {name}.soak }}
  service:
    image: {g}/crashy_service.wasm
    env: {{ PORT: "7171", {env} }}
    ports: [{{ port: 7171 }}]
    restart: {{ policy: always }}
"""

    return {
        "hello": f"""\
  components:
    - name: hello
      image: {g}/hello.wasm
      http: {{ host: hello.soak }}
""",
        "faults": f"""\
  components:
    - name: faults
      image: {g}/faults.wasm
      http: {{ host: faults.soak }}
      limits: {{ memoryMiB: 16, timeoutMs: 5000, maxConcurrency: 32 }}
""",
        "loop": f"""\
  components:
    - name: faults
      image: {g}/faults.wasm
      http: {{ host: loop.soak }}
      limits: {{ timeoutMs: 100, maxConcurrency: 32 }}
""",
        "crash-trap": crashy("crash-trap", 'MODE: trap, AFTER_MS: "300"'),
        "crash-exit": crashy("crash-exit", 'MODE: exit-code, EXIT_CODE: "3", AFTER_MS: "1000"'),
        "kv": f"""\
  hostInterfaces:
    - {{ interface: wasi:keyvalue, backend: memory }}
  components:
    - name: web
      image: {g}/kv_http.wasm
      http: {{ host: kv.soak }}
""",
        "link": f"""\
  components:
    - name: caller
      image: {g}/types_caller.wasm
      http: {{ host: link.soak }}
    - name: callee
      image: {g}/types_callee.wasm
      limits: {{ timeoutMs: 1000, maxConcurrency: 64 }}
""",
        "cache": f"""\
  components:
    - name: web
      image: {g}/cache_http.wasm
      http: {{ host: cache.soak }}
      env: {{ CACHE_PORT: "6380" }}
  service:
    image: {g}/cache_service.wasm
    env: {{ CACHE_PORT: "6380" }}
    ports: [{{ port: 6380 }}]
    restart: {{ policy: always }}
""",
    }


# A request that shows a workload serves: (route host, path, status).
READY = [
    ("hello.soak", "/", 200), ("faults.soak", "/ok", 200), ("loop.soak", "/ok", 200), ("crash-trap.soak", "/listen/9", 403),
    ("crash-exit.soak", "/listen/9", 403), ("kv.soak", "/incr/soak/ready", 200),
    ("cache.soak", "/ping", 200), ("link.soak", "/greet/ready", 200),
]  # fmt: skip


def manifest(g: Path, replicas: int | None) -> str:
    docs = []
    for name, spec in specs(g).items():
        if replicas is None:
            docs.append(f"apiVersion: hearth.dev/v1alpha1\nkind: Workload\nmetadata:\n  name: {name}\nspec:\n{spec}")
        else:
            docs.append(
                f"apiVersion: hearth.dev/v1alpha1\nkind: WorkloadDeployment\nmetadata:\n  name: {name}\n"
                f"spec:\n  replicas: {replicas}\n  template:\n    spec:\n{textwrap.indent(spec, '    ')}"
            )
    return "---\n".join(docs)


def status_of(port: int, host: str, path: str, timeout: float = 5.0) -> int | None:
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Host": host})
        resp = conn.getresponse()
        resp.read()
        return resp.status
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()


def wait_serving(port: int, proc: Process, within: float) -> None:
    """Until every workload answers through the ingress at `port`."""
    deadline = time.monotonic() + within
    pending = list(READY)
    while pending:
        proc.check_alive()
        pending = [r for r in pending if status_of(port, r[0], r[1]) != r[2]]
        if not pending:
            return
        if time.monotonic() > deadline:
            names = ", ".join(f"{h}{p}" for h, p, _ in pending)
            raise BenchError(f"{proc.name} did not serve {names} within {within:.0f} s:\n{proc.log_tail()}")
        time.sleep(0.3)


# ---------------------------------------------------------------------------
# The binary


def newest_source() -> tuple[float, Path | None]:
    newest, which = 0.0, None
    candidates = itertools.chain(
        (REPO_ROOT / "crates").rglob("*.rs"), (REPO_ROOT / "crates").rglob("Cargo.toml"),
        [REPO_ROOT / "Cargo.toml", REPO_ROOT / "Cargo.lock"],
    )  # fmt: skip
    for p in candidates:
        try:
            m = p.stat().st_mtime
        except OSError:
            continue
        if m > newest:
            newest, which = m, p
    return newest, which


def choose_binary(args) -> tuple[Path, str]:
    """`--binary`, else the release build if it is newer than every source, else debug."""
    if args.binary:
        return args.binary, "given with --binary"
    release, debug = REPO_ROOT / "target/release/hearth", REPO_ROOT / "target/debug/hearth"
    newest, which = newest_source()
    rel = which.relative_to(REPO_ROOT) if which else "?"
    if release.exists() and release.stat().st_mtime >= newest:
        return release, "release build, newer than the sources"
    why = "no release build" if not release.exists() else f"the release build is older than {rel}"
    note = "" if debug.exists() and debug.stat().st_mtime >= newest else f" (also older than {rel})"
    return debug, f"debug build{note}: {why}"


# ---------------------------------------------------------------------------
# Sampling


class Sampler:
    """Every `interval` s (skipped while the load is paused) and on demand: one row with each
    process's /proc figures and, for hosts, their metrics."""

    def __init__(self, procs, interval: float, t0: float, load_totals) -> None:
        self.procs = procs  # callable: -> {name: (incarnation, pid, (http, admin) ports or None)}
        self.interval = interval
        self.t0 = t0
        self.load_totals = load_totals
        self.rows: list[dict] = []
        self.lock = threading.Lock()
        self.paused = threading.Event()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join()

    def _run(self) -> None:
        next_t = time.monotonic() + self.interval
        while not self.stopping.wait(max(0.0, next_t - time.monotonic())):
            next_t += self.interval
            if not self.paused.is_set():
                self.sample("load")

    def sample(self, phase: str) -> dict:
        with self.lock:
            row = {"t": round(time.monotonic() - self.t0, 1), "phase": phase, "procs": {}}
            procs = self.procs()
            tcp = tcp_table()
            http_ports = {ports[0] for _, _, ports in procs.values() if ports}
            for name, (inc, pid, ports) in procs.items():
                p = proc_sample(pid, ports and ports[0], ports and http_ports - {ports[0]}, tcp)
                if p is None:
                    continue
                p.update({"inc": inc, "pid": pid})
                if ports:
                    p.update(scrape(ports[1]) or {})
                row["procs"][name] = p
            row["requests"] = self.load_totals()
            self.rows.append(row)
            return row


def checkpoint(load: Load, sampler: Sampler, quiet: float, label: str) -> None:
    """A sample under load, then pause: answers in flight finish, the connections close, and
    after `quiet` seconds the quiet sample; then the load resumes (unless it is the end)."""
    sampler.sample("load")
    sampler.paused.set()
    if not load.pause():
        log(f"{label}: requests were still in flight 30 s after the load paused")
    time.sleep(quiet)
    row = sampler.sample("quiet")
    log(f"{label}: quiet sample " + "; ".join(f"{n} {cell(p)}" for n, p in row["procs"].items()))


# ---------------------------------------------------------------------------
# One host


def run_single(args, tmp: Path, binary: Path) -> dict:
    (tmp / "soak.yaml").write_text(manifest(args.guests_dir, None))
    port, admin = free_port(), free_port()
    argv = [
        str(binary), "run", "--http", f"{HOST}:{port}", "--admin", f"{HOST}:{admin}",
        "--cache-dir", str(args.cache_dir), str(tmp / "soak.yaml"),
    ]  # fmt: skip
    host = Process("hearth", argv, tmp / "hearth.log")
    try:
        wait_serving(port, host, 300)
        log(f"hearth (pid {host.proc.pid}) serves every workload on {HOST}:{port}; admin on {admin}")
        t0 = time.monotonic()
        duration = args.minutes * 60
        load = Load(lambda: [port], args.rate, args.workers, args.timeout, int(args.rate * duration * 1.1) + 100, t0)
        sampler = Sampler(lambda: {"hearth": (1, host.proc.pid, (port, admin))}, args.interval, t0, load.totals)
        load.start()
        sampler.start()
        warmup_s = max(0.2 * duration, args.interval)
        try:
            progress_until(t0 + warmup_s, load, host)
            checkpoint(load, sampler, args.quiet, "end of warm-up")
            sampler.paused.clear()
            load.resume()
            progress_until(t0 + duration + args.quiet, load, host)
            checkpoint(load, sampler, args.quiet, "end of run")
        finally:
            load.stop()
            sampler.stop()
        host.check_alive()
        incarnations = [{"name": "hearth", "inc": 1, "pid": host.proc.pid, "start_t": 0.0, "end_t": None}]
        return {
            "mode": "single",
            "warmup_s": warmup_s,
            "samples": sampler.rows,
            "incarnations": incarnations,
            "requests": load.report(),
            "load": {"dispatched": load.dispatched, "dropped": load.dropped, "retries": load.retries},
            "kills": [],
        }
    finally:
        host.stop()


def progress_until(t_end: float, load: Load, *procs: Process) -> None:
    last = 0.0
    while time.monotonic() < t_end:
        load.check()
        for p in procs:
            p.check_alive()
        if time.monotonic() - last >= 60:
            last = time.monotonic()
            t = load.totals()
            log(f"  {t['sent']} requests, {t['unexpected']} unexpected, {t['during_kill']} during kills")
        time.sleep(min(0.5, max(0.0, t_end - time.monotonic())))


# ---------------------------------------------------------------------------
# A cluster


class SoakCluster:
    def __init__(self, args, tmp: Path, binary: Path) -> None:
        self.args, self.tmp, self.binary = args, tmp, binary
        self.t0 = time.monotonic()
        self.lock = threading.Lock()
        self.nats_port = free_port()
        self.url = f"nats://{HOST}:{self.nats_port}"
        self.nats = Process(
            "nats", [str(args.nats), "-js", "-a", HOST, "-p", str(self.nats_port), "-sd", str(tmp / "js")],
            tmp / "nats.log",
        )  # fmt: skip
        self.ports = {h: (free_port(), free_port()) for h in ("h1", "h2", "h3")}
        self.hosts: dict[str, Process] = {}
        self.inc = {h: 0 for h in self.ports}
        self.live: list[str] = []
        self.incarnations: list[dict] = []
        self.controller = None
        wait_port(self.nats_port, self.nats)
        for h in self.ports:
            self.start_host(h)
        self.controller = Process(
            "controller", [str(binary), "controller", "--nats", self.url, "--id", "soak"], tmp / "controller.log"
        )
        deadline = time.monotonic() + 60
        while self.cli("get", "deployments").returncode != 0:
            if time.monotonic() > deadline:
                raise BenchError("the cluster store never answered")
            time.sleep(0.3)

    def start_host(self, h: str) -> None:
        port, admin = self.ports[h]
        self.inc[h] += 1
        argv = [
            str(self.binary), "host", "--nats", self.url, "--host-id", h, "--http", f"{HOST}:{port}",
            "--admin", f"{HOST}:{admin}", "--cache-dir", str(self.args.cache_dir),
        ]  # fmt: skip
        proc = Process(h, argv, self.tmp / f"{h}-{self.inc[h]}.log")
        with self.lock:
            self.hosts[h] = proc
            self.incarnations.append(
                {"name": h, "inc": self.inc[h], "pid": proc.proc.pid, "start_t": round(time.monotonic() - self.t0, 1), "end_t": None}
            )  # fmt: skip
        deadline = time.monotonic() + 120
        while "joined the cluster" not in proc.log_text():
            proc.check_alive()
            if time.monotonic() > deadline:
                raise BenchError(f"{h} did not join the cluster:\n{proc.log_tail()}")
            time.sleep(0.1)

    def cli(self, *argv: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(self.binary), *argv, "--cluster", self.url], capture_output=True, text=True, timeout=60
        )

    def deploy(self) -> None:
        path = self.tmp / "soak-cluster.yaml"
        path.write_text(manifest(self.args.guests_dir, self.args.replicas))
        out = self.cli("apply", "-f", str(path))
        if out.returncode != 0:
            raise BenchError(f"apply failed:\n{out.stdout}{out.stderr}")
        want = len(specs(self.args.guests_dir)) * self.args.replicas
        deadline = time.monotonic() + 300
        ready = 0
        while time.monotonic() < deadline:
            out = self.cli("get", "deployments", "-o", "json")
            if out.returncode == 0:
                ready = sum(int((d.get("status") or {}).get("availableReplicas") or 0) for d in json.loads(out.stdout))
                if ready >= want:
                    break
            time.sleep(0.5)
        if ready < want:
            raise BenchError(f"only {ready}/{want} replicas ready after 300 s")
        for h, proc in self.hosts.items():
            wait_serving(self.ports[h][0], proc, 60)
        with self.lock:
            self.live = sorted(self.hosts)
        log(f"{want} replicas ready; every host answers for every workload")

    def targets(self) -> list[int]:
        with self.lock:
            return [self.ports[h][0] for h in self.live]

    def procs(self) -> dict:
        with self.lock:
            out = {h: (self.inc[h], p.proc.pid, self.ports[h]) for h, p in self.hosts.items() if p.proc.poll() is None}
        if self.controller:
            out["controller"] = (1, self.controller.proc.pid, None)
        out["nats"] = (1, self.nats.proc.pid, None)
        return out

    def kill(self, h: str) -> float:
        """Takes `h` out of the ingress rotation and SIGKILLs it; the kill's time."""
        with self.lock:
            self.live = [x for x in self.live if x != h]
            proc = self.hosts[h]
        at = time.monotonic()
        proc.kill()
        for inc in self.incarnations:
            if inc["name"] == h and inc["end_t"] is None:
                inc["end_t"] = round(at - self.t0, 1)
        return at

    def restart(self, h: str) -> None:
        self.start_host(h)
        wait_serving(self.ports[h][0], self.hosts[h], 120)
        with self.lock:
            self.live = sorted(set(self.live) | {h})

    def check_alive(self) -> None:
        for p in [self.nats, self.controller, *self.hosts.values()]:
            p.check_alive()

    def stop(self) -> None:
        for p in [self.controller, *self.hosts.values(), self.nats]:
            if p is not None:
                p.stop()


def run_cluster(args, tmp: Path, binary: Path) -> dict:
    c = SoakCluster(args, tmp, binary)
    try:
        c.deploy()
        t0 = time.monotonic()
        c.t0 = t0
        for inc in c.incarnations:
            inc["start_t"] = 0.0
        duration = args.minutes * 60
        kills: list[dict] = []

        def in_kill_window(start: float, end: float) -> bool:
            return any(start <= k["at"] + args.kill_window and end >= k["at"] for k in kills)

        load = Load(c.targets, args.rate, args.workers, args.timeout, int(args.rate * duration * 1.1) + 100, t0, in_kill_window)
        sampler = Sampler(c.procs, args.interval, t0, load.totals)
        load.start()
        sampler.start()
        warmup_s = max(0.2 * duration, args.interval)
        # The first kill moves the victim's replicas onto the other hosts (after it, h1 runs one
        # replica of every deployment, and keeps them), so a host's warm-up counts from the
        # last change of its workloads: the first quiet sample waits for h1's to end.
        check_at = warmup_s
        if args.kill_every + args.down < duration:
            check_at += args.kill_every + args.down + args.interval
        warm = check_at >= duration  # no quiet sample before the end's
        if warm:
            log(f"the run is too short for a quiet sample after h1's warm-up ({check_at:.0f} s)")
        victims = itertools.cycle(args.victims)
        next_kill = t0 + args.kill_every
        last_log = t0
        try:
            while time.monotonic() < t0 + duration + args.quiet:
                c.check_alive()
                load.check()
                now = time.monotonic()
                if not warm and now >= t0 + check_at:
                    checkpoint(load, sampler, args.quiet, "end of warm-up")
                    sampler.paused.clear()
                    load.resume()
                    warm = True
                elif now >= next_kill and now + args.down < t0 + duration:
                    h = next(victims)
                    kills.append({"at": time.monotonic(), "host": h})  # before the kill, for the window
                    c.kill(h)
                    load.forget(c.ports[h][0])
                    at = kills[-1]["at"]
                    log(f"  t={at - t0:.0f}s: killed {h} (SIGKILL); restarting it in {args.down:g} s")
                    time.sleep(args.down)
                    c.restart(h)
                    kills[-1]["back_after_s"] = round(time.monotonic() - at, 1)
                    log(f"  {h} is back and serves every workload, {kills[-1]['back_after_s']} s after the kill")
                    next_kill += args.kill_every
                if time.monotonic() - last_log >= 60:
                    last_log = time.monotonic()
                    t = load.totals()
                    log(f"  {t['sent']} requests, {t['unexpected']} unexpected, {t['during_kill']} during kills")
                time.sleep(0.2)
            checkpoint(load, sampler, args.quiet, "end of run")
        finally:
            load.stop()
            sampler.stop()
        return {
            "mode": "cluster",
            "warmup_s": warmup_s,
            "samples": sampler.rows,
            "incarnations": c.incarnations,
            "requests": load.report(),
            "load": {"dispatched": load.dispatched, "dropped": load.dropped, "retries": load.retries},
            "kills": [{"t": round(k["at"] - t0, 1), "host": k["host"], "back_after_s": k.get("back_after_s")} for k in kills],
        }
    finally:
        c.stop()


def body(args, tmp: Path) -> dict:
    binary, why = args.chosen_binary
    if args.cluster:
        # A killed host restarts from this copy, so a rebuild during the run cannot swap it.
        with tempfile.TemporaryDirectory(prefix="hearth-soak-bin-") as bindir:
            copy = Path(bindir) / "hearth"
            shutil.copy2(binary, copy)
            out = run_cluster(args, tmp, copy)
    else:
        out = run_single(args, tmp, binary)
    out["binary"] = {"path": str(binary), "why": why}
    out["config"] = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "chosen_binary"}
    out["growth"] = growth(out)
    out["verdict"] = verdict(out)
    print_report(out)
    return out


def check_inputs(args) -> None:
    binary, _ = args.chosen_binary
    if not binary.exists():
        raise BenchError(f"no hearth binary at {binary} (build it: nice -n 15 cargo build -p hearth-cli)")
    missing = [g for g in GUESTS if not (args.guests_dir / f"{g}.wasm").exists()]
    if missing:
        raise BenchError(f"missing guests in {args.guests_dir}: {', '.join(missing)} (cd guests && cargo build --release)")
    if args.cluster and not args.nats.exists():
        raise BenchError(f"nats-server not found at {args.nats} (scripts/setup installs it)")
    if args.minutes <= 0 or args.rate <= 0 or args.workers <= 0:
        raise BenchError("--minutes, --rate and --workers must be positive")
    if args.cluster and (args.kill_every <= args.down or not set(args.victims) <= {"h1", "h2", "h3"}):
        raise BenchError("--kill-every must exceed --down, and --victims name hosts among h1,h2,h3")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=30.0, help="length of the run (default 30)")
    p.add_argument("--rate", type=float, default=200.0, help="requests/s in total over every kind (default 200)")
    p.add_argument("--workers", type=int, default=16, help="client threads, so requests in flight at most (16)")
    p.add_argument("--timeout", type=float, default=15.0, help="client timeout per request, s (15)")
    p.add_argument("--interval", type=float, default=10.0, help="seconds between samples (10)")
    p.add_argument("--quiet", type=float, default=5.0, help="seconds without load before a quiet sample (5)")
    p.add_argument("--cluster", action="store_true", help="three hosts, a controller and NATS, with host kills")
    p.add_argument("--replicas", type=int, default=2, help="cluster: replicas per deployment (2)")
    p.add_argument("--kill-every", type=float, default=120.0, help="cluster: seconds between host kills (120)")
    p.add_argument("--kill-window", type=float, default=10.0,
                   help="cluster: seconds after a kill whose failed requests count as 'during a kill' (10)")  # fmt: skip
    p.add_argument("--down", type=float, default=5.0, help="cluster: seconds a killed host stays down (5)")
    p.add_argument("--victims", type=lambda s: s.split(","), default=["h2", "h3"],
                   help="cluster: hosts killed in turn (default h2,h3; h1 lives the whole run)")  # fmt: skip
    p.add_argument("--binary", type=Path, help="hearth binary (default: release if newer than the sources, else debug)")
    p.add_argument("--nats", type=Path, default=REPO_ROOT / ".tools/venv/bin/nats-server")
    p.add_argument("--guests-dir", type=Path, default=REPO_ROOT / "guests/target/wasm32-wasip2/release")
    p.add_argument("--cache-dir", type=Path, default=BENCH_DIR / ".cache/soak-hearth-cache")
    p.add_argument("--log-dir", type=Path, help="keep the logs and manifests here")
    p.add_argument("--output", type=Path, help="default bench/results/soak-latest.json (soak-cluster-latest.json)")
    args = p.parse_args()
    args.guests_dir = args.guests_dir.resolve()
    args.chosen_binary = choose_binary(args)
    output = args.output or BENCH_DIR / f"results/soak{'-cluster' if args.cluster else ''}-latest.json"
    binary, why = args.chosen_binary
    where = f"3 hosts + controller, kill {'/'.join(args.victims)} every {args.kill_every:g} s" if args.cluster else "one host"
    plan = (
        f"soak, {where}, {args.minutes:g} min at {args.rate:g} req/s ({args.workers} client threads), "
        f"sample every {args.interval:g} s\n  binary: {binary} ({why})"
    )
    result = run_driver(args, check_inputs, plan, "hearth-soak-", body)
    if isinstance(result, int):
        return result
    info, out = result
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps({"machine": info, "results": out}, indent=2))
    log(f"wrote {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
