"""Helpers shared by the benchmark drivers in bench/lib (stdlib only, Python 3.11).

Machine description, CPU pinning constants, pinned server processes with a log
file each, free loopback ports, a minimal HTTP status probe, and running and
parsing wrk. Everything here talks to 127.0.0.1 only.
"""

from __future__ import annotations

import datetime as dt
import http.client
import json
import os
import platform
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SERVER_CPU = "1"
CLIENT_CPU = "0"
HOST = "127.0.0.1"

STOP_GRACE_S = 5.0

_log_prefix = "bench"


def set_log_prefix(prefix: str) -> None:
    """Sets the `[prefix]` that `log` puts before every message."""
    global _log_prefix
    _log_prefix = prefix


def log(msg: str) -> None:
    print(f"[{_log_prefix}] {msg}", file=sys.stderr, flush=True)


class BenchError(Exception):
    pass


# ---------------------------------------------------------------------------
# Machine info


def raise_if_missing(missing: list[str]) -> None:
    """The one error naming everything a driver's input check found missing, if anything."""
    if missing:
        raise BenchError("cannot run the benchmark:\n  - " + "\n  - ".join(missing))


def write_results(path: Path, result: dict) -> None:
    """Writes a driver's results as JSON, making its folder if needed, and says where."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    print(f"results written to {path}")


def machine_info() -> dict:
    try:
        nproc = int(subprocess.run(["nproc"], capture_output=True, text=True, check=True).stdout.strip())
    except (OSError, subprocess.CalledProcessError, ValueError):
        nproc = os.cpu_count() or 0
    cpu_model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Model", "cpu model", "Hardware"):
                cpu_model = value.strip()
                break
    except OSError:
        pass
    try:
        loadavg = [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]
    except (OSError, ValueError):
        loadavg = []
    return {
        "nproc": nproc,
        "loadavg": loadavg,
        "cpu_model": cpu_model,
        "kernel": f"{platform.system()} {platform.release()}",
        "date": dt.datetime.now(dt.timezone.utc).astimezone().isoformat(timespec="seconds"),
        "python": platform.python_version(),
    }


def print_machine(info: dict) -> None:
    """The `Machine` block both drivers start with (without the plan line)."""
    print("Machine")
    print(f"  nproc:  {info['nproc']}")
    print(f"  cpu:    {info['cpu_model']}")
    print(f"  kernel: {info['kernel']}")
    print(f"  date:   {info['date']}")
    print(f"  load:   {' '.join(f'{x:.2f}' for x in info['loadavg']) or 'unknown'}")


def cpu_busy_fraction(interval: float = 1.0) -> float | None:
    """Fraction of all CPUs busy over `interval` seconds, from /proc/stat."""

    def sample() -> tuple[int, int]:
        fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
        return sum(fields[:8]), idle

    try:
        total0, idle0 = sample()
        time.sleep(interval)
        total1, idle1 = sample()
    except (OSError, ValueError, IndexError):
        return None
    total = total1 - total0
    return (1.0 - (idle1 - idle0) / total) if total > 0 else None


def warn_if_busy(info: dict) -> None:
    """Samples CPU use for a second, records it in `info` and warns above 20%."""
    busy = cpu_busy_fraction()
    info["cpu_busy_before"] = busy
    if busy is not None and busy > 0.2:
        log(f"WARNING: the CPUs were {busy:.0%} busy just before the run; other work will skew the figures")


# ---------------------------------------------------------------------------
# Processes and ports


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def port_is_free(port: int) -> bool:
    """Whether `HOST:port` can be bound right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((HOST, port))
        except OSError:
            return False
        return True


def pinned(argv: list[str], cpu: str = SERVER_CPU) -> list[str]:
    return ["taskset", "-c", cpu, *argv]


class Process:
    """A running process with its stdout and stderr going to one log file."""

    def __init__(self, name: str, argv: list[str], log_path: Path, env: dict | None = None) -> None:
        self.name = name
        self.log_path = log_path
        self._log = open(self.log_path, "wb")
        env = {**os.environ, **(env or {})}
        self.start_time = time.perf_counter()
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT, env=env
        )

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 20) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def check_alive(self) -> None:
        code = self.proc.poll()
        if code is not None:
            raise BenchError(
                f"{self.name} exited with status {code} before it was ready; its output:\n{self.log_tail()}"
            )

    def stop(self, grace: float = STOP_GRACE_S) -> None:
        """SIGTERM, then SIGKILL after `grace` seconds."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                log(f"{self.name} did not exit {grace:.0f}s after SIGTERM; sending SIGKILL")
                self.proc.kill()
                self.proc.wait()
        self._log.close()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self._log.close()


def wait_port(port: int, proc: Process, within: float = 30) -> None:
    """Waits until something listens on `port`, while `proc` stays alive."""
    deadline = time.monotonic() + within
    while True:
        proc.check_alive()
        try:
            socket.create_connection((HOST, port), timeout=0.5).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise BenchError(f"{proc.name} did not listen on {port}:\n{proc.log_tail()}")
            time.sleep(0.05)


class AdminHost:
    """One `hearth run` with an HTTP port and an admin API whose bearer token is `token`,
    pinned to the server CPU; constructed once `/healthz` answers."""

    def __init__(
        self, binary: Path, tmp: Path, name: str, cache_dir: Path, token: str, workers: int = 1, ready_within: float = 60.0
    ) -> None:
        self.http_port, self.admin_port = free_port(), free_port()
        token_file = tmp / f"{name}.token"
        token_file.write_text(token + "\n")
        argv = [
            str(binary), "run", "--workers", str(workers), "--log-format", "json",
            "--http", f"{HOST}:{self.http_port}", "--admin", f"{HOST}:{self.admin_port}",
            "--admin-token-file", str(token_file), "--cache-dir", str(cache_dir),
        ]  # fmt: skip
        self.proc = Process(name, pinned(argv), tmp / f"{name}.log", {"RUST_LOG": "warn"})
        deadline = time.monotonic() + ready_within
        while http_get_status(self.admin_port, 1.0, "/healthz") != 200:
            self.proc.check_alive()
            if time.monotonic() > deadline:
                raise BenchError(f"{name} did not answer /healthz; its output:\n{self.proc.log_tail()}")
            time.sleep(0.02)

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.proc.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise BenchError("no VmRSS for the host process")

    def stop(self) -> None:
        self.proc.stop()


# ---------------------------------------------------------------------------
# A minimal HTTP/1.1 probe


def http_get_status(port: int, timeout: float, path: str = "/") -> int | None:
    """One `GET path` with `Connection: close`; the status code, or None if it failed."""
    try:
        with socket.create_connection((HOST, port), timeout=timeout) as s:
            s.sendall(request_bytes(port, path))
            return read_status(s)
    except OSError:
        return None


def http_get(port: int, path: str, timeout: float) -> tuple[int, str]:
    """`GET path` on a fresh connection; the status and the body as text. Raises OSError."""
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read().decode(errors="replace")
    except http.client.HTTPException as e:
        raise OSError(f"GET {path}: {e!r}") from e
    finally:
        conn.close()


def request_bytes(port: int, path: str = "/") -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nConnection: close\r\n\r\n".encode()


def read_status(s: socket.socket) -> int | None:
    buf = b""
    while b"\r\n" not in buf:
        chunk = s.recv(4096)
        if not chunk:
            break
        buf += chunk
    m = re.match(rb"HTTP/1\.[01] (\d{3})", buf)
    return int(m.group(1)) if m else None


# ---------------------------------------------------------------------------
# wrk

UNIT_US = {"us": 1.0, "ms": 1e3, "s": 1e6, "m": 60e6, "h": 3600e6}


def to_us(value: str, unit: str) -> float:
    return float(value) * UNIT_US[unit]


def parse_wrk(out: str) -> dict:
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", out, re.M)
    p50 = re.search(r"^\s+50%\s+([\d.]+)(us|ms|s|m|h)\s*$", out, re.M)
    p99 = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s|m|h)\s*$", out, re.M)
    total = re.search(r"^\s+(\d+) requests in", out, re.M)
    if not (rps and p50 and p99):
        raise BenchError(f"cannot parse wrk output:\n{out}")
    result = {
        "rps": float(rps.group(1)),
        "p50_us": to_us(*p50.groups()),
        "p99_us": to_us(*p99.groups()),
        "requests": int(total.group(1)) if total else None,
        "non_2xx": 0,
        "socket_errors": {},
    }
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    if non2xx:
        result["non_2xx"] = int(non2xx.group(1))
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if sock:
        result["socket_errors"] = dict(zip(("connect", "read", "write", "timeout"), map(int, sock.groups())))
    return result


def run_wrk(wrk: str, port: int, connections: int, duration: float, path: str = "/") -> dict:
    """`wrk -t1 -cN -dD --latency` pinned to the client CPU; the parsed result."""
    argv = [
        "taskset", "-c", CLIENT_CPU, wrk, "-t1", f"-c{connections}", f"-d{fmt_duration(duration)}",
        "--latency", f"http://{HOST}:{port}{path}",
    ]  # fmt: skip
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 60)
    if proc.returncode != 0:
        raise BenchError(f"wrk failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return parse_wrk(proc.stdout)


def wrk_notes(r: dict) -> str:
    """`non-2xx=N socket errors read=M` for a parsed wrk result, or ``."""
    notes = []
    if r["non_2xx"]:
        notes.append(f"non-2xx={r['non_2xx']}")
    errs = {k: v for k, v in r["socket_errors"].items() if v}
    if errs:
        notes.append("socket errors " + ",".join(f"{k}={v}" for k, v in errs.items()))
    return " ".join(notes)


def fmt_duration(seconds: float) -> str:
    return f"{int(seconds)}s" if float(seconds).is_integer() else f"{int(seconds * 1000)}ms"


def run_driver(args, check_inputs, plan: str, tmp_prefix: str, body, wasmtime=None):
    """The part every driver shares: check its inputs (exit 2), print the machine and `plan`,
    warn if the machine is busy, then run `body(args, tmp)` in a temporary folder (or
    `--log-dir` when the driver has one and it is given).

    Returns `(machine info, body's result)`, or the exit code when it stopped: 2 for bad
    inputs, 1 for a `BenchError`, 130 for Ctrl-C. With `wasmtime` (a path), its version is
    recorded in the machine info."""
    try:
        check_inputs(args)
    except BenchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    info = machine_info()
    print_machine(info)
    print(f"  plan:   {plan}")
    print(flush=True)
    warn_if_busy(info)
    if wasmtime:
        ver = subprocess.run([str(wasmtime), "--version"], capture_output=True, text=True)
        info["wasmtime_version"] = ver.stdout.strip()
    args.cache_dir.mkdir(parents=True, exist_ok=True)

    with tempfile.TemporaryDirectory(prefix=tmp_prefix) as tmp_s:
        tmp = Path(tmp_s)
        log_dir = getattr(args, "log_dir", None)
        if log_dir:
            tmp = log_dir.resolve()
            tmp.mkdir(parents=True, exist_ok=True)
        try:
            return info, body(args, tmp)
        except BenchError as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130
