"""The soak's mixed load and its samplers (stdlib only, Python 3.11). Used by soak_bench.py.

- `KINDS`: every kind of request the soak sends, the workload (route host) it goes to, and
  what it must answer. Anything else is an *unexpected status* of that kind.
- `Load`: a pacing thread and a bounded pool of worker threads sending those kinds at a fixed
  total rate, over keep-alive connections that are recycled every `RECYCLE_AFTER` requests.
- `proc_sample` and `scrape`: a process's RSS, open fds and threads from /proc, and the gauges
  the soak watches from a host's Prometheus `/metrics`.

Everything talks to 127.0.0.1 only.
"""

from __future__ import annotations

import http.client
import json
import os
import queue
import re
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from common import HOST, BenchError, http_get

# A worker's keep-alive connection is closed and opened afresh after this many requests, so
# accepting and closing connections is part of the load too.
RECYCLE_AFTER = 50
# Unexpected answers kept verbatim (per kind) for the report.
EXAMPLES_PER_KIND = 5
# Failures kept per kind (with their times, to tell those during a kill); past this, counted.
MAX_FAILURES = 20_000


@dataclass
class Kind:
    """One kind of request: `GET`/`PUT` `path(i)` with `Host: {host}`, weighted in the mix."""

    name: str
    host: str
    path: object  # callable: sequence number -> path
    expect: str  # what it must answer, for the report
    check: object  # callable: (status, body) -> bool
    weight: int
    method: str = "GET"
    body: object = None  # callable: sequence number -> bytes, or None

    def request(self, i: int) -> tuple[str, str, bytes | None]:
        return self.method, self.path(i), (self.body(i) if self.body else None)


def _status(code: int, text: str | None = None):
    return lambda s, b: s == code and (text is None or text in b)


def _crash_probe(s: int, b: str) -> bool:
    # The service is up (its greeting), in backoff (nothing listens: refused at once), or it
    # died with this connection open (reset).
    # A connection the dying service had not answered yet ends at once: `connected: ` and no
    # line (the probe reads EOF as an empty line).
    if s == 200:
        return b in ("connected: hello\n", "connected: \n")
    return s == 502 and any(r in b for r in ("ConnectionRefused", "ConnectionReset", "UnexpectedEof"))


def kinds() -> list[Kind]:
    """The mix, as weights out of 100 (at the default 200 requests/s, 1 = 2 requests/s)."""
    value = b"v" * 64
    return [
        Kind("hello", "hello.soak", lambda i: "/", "200 hello", _status(200, "hello"), 30),
        Kind("fault-trap", "faults.soak", lambda i: "/trap", "500", _status(500), 5),
        Kind("fault-oom", "faults.soak", lambda i: "/oom", "500", _status(500), 3),
        Kind("fault-stack", "faults.soak", lambda i: "/stack", "500", _status(500), 2),
        # Spins until its 100 ms deadline (a workload of its own, so that the other faults have
        # a deadline a busy machine cannot reach): the most CPU per request, so the fewest.
        Kind("fault-loop", "loop.soak", lambda i: "/loop", "504", _status(504), 1),
        Kind(
            "crash-probe", "crash-trap.soak", lambda i: "/connect/127.0.0.1/7171",
            "200, or 502 refused/reset while the service is down", _crash_probe, 4,
        ),  # fmt: skip
        Kind(
            "crash-probe-exit", "crash-exit.soak", lambda i: "/connect/127.0.0.1/7171",
            "200, or 502 refused/reset while the service is down", _crash_probe, 4,
        ),  # fmt: skip
        Kind(
            "kv-set", "kv.soak", lambda i: f"/set/soak/k{i % 256}", "200 ok", _status(200, "ok"), 8,
            method="PUT", body=lambda i: value,
        ),  # fmt: skip
        Kind("kv-incr", "kv.soak", lambda i: f"/incr/soak/n{i % 64}", "200", _status(200), 7),
        Kind("cache-incr", "cache.soak", lambda i: f"/incr/c{i % 256}", "200 INT", _status(200, "INT "), 8),
        Kind("cache-set", "cache.soak", lambda i: f"/set/s{i % 256}/value{i}", "200 OK", _status(200, "OK"), 7),
        Kind("link-greet", "link.soak", lambda i: f"/greet/w{i % 1000}", "200 hello, w..", _status(200, "hello, w"), 13),
        Kind("link-roundtrip", "link.soak", lambda i: "/roundtrip", "200 all 26 ok", _status(200, "all 26"), 2),
        Kind(
            "link-trap", "link.soak", lambda i: "/greet/trap", "502 greet failed",
            _status(502, "greet failed"), 2,
        ),  # fmt: skip
    ]


def schedule(ks: list[Kind]) -> list[Kind]:
    """One cycle of the mix, interleaved (smooth weighted round robin), `sum(weights)` long."""
    total = sum(k.weight for k in ks)
    current = {k.name: 0 for k in ks}
    out = []
    for _ in range(total):
        for k in ks:
            current[k.name] += k.weight
        best = max(ks, key=lambda k: current[k.name])
        current[best.name] -= total
        out.append(best)
    return out


@dataclass
class KindStats:
    sent: int = 0
    ok: int = 0
    answers: dict = field(default_factory=dict)  # status (or error name) -> count
    failures: list = field(default_factory=list)  # (start, end, answer, port, path, body)
    overflow: int = 0  # failures beyond MAX_FAILURES, counted as unexpected
    total_s: float = 0.0
    max_s: float = 0.0


class Load:
    """`rate` requests/s in total, `workers` threads, at most `limit` requests, until stopped.

    `targets()` gives the ingress ports to use now (one for a single host, the live hosts of a
    cluster); `in_kill_window(start, end)` says whether a request overlapped a host kill, in
    which case an unexpected answer is counted as `during_kill` instead. That is decided when
    counting, so a failure seen before the kill was recorded is still attributed to it."""

    def __init__(
        self, targets, rate: float, workers: int, timeout: float, limit: int, t0: float, in_kill_window=None
    ):
        self.kinds = kinds()
        self.cycle = schedule(self.kinds)
        self.targets = targets
        self.rate = rate
        self.timeout = timeout
        self.limit = limit
        self.t0 = t0
        self.in_kill_window = in_kill_window or (lambda s, e: False)
        self.stats = {k.name: KindStats() for k in self.kinds}
        self.lock = threading.Lock()
        self.queue: queue.Queue = queue.Queue(maxsize=workers * 2)
        self.dispatched = 0
        self.dropped = 0  # ticks the workers could not take (all busy, queue full)
        self.retries = 0  # reused keep-alive connections found closed before an answer
        self.in_flight = 0
        self.stopping = threading.Event()
        self.paused = threading.Event()
        self.generation = 0  # bumped by pause(): workers close their connections
        self.port_epoch: dict[int, int] = {}  # bumped by forget(port): connections to it close
        self.crashed: list[str] = []
        self.threads = [threading.Thread(target=self._work, daemon=True) for _ in range(workers)]
        self.pacer = threading.Thread(target=self._pace, daemon=True)

    def start(self) -> None:
        for t in self.threads:
            t.start()
        self.pacer.start()

    def stop(self) -> None:
        self.stopping.set()
        self.pacer.join()
        for t in self.threads:
            t.join(timeout=self.timeout + 5)

    def pause(self, within: float = 30.0) -> bool:
        """Stops sending, waits for answers in flight, closes every connection; False if some
        were still in flight after `within` seconds."""
        self.paused.set()
        with self.lock:
            self.generation += 1
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            with self.lock:
                idle = self.in_flight == 0 and self.queue.empty()
            if idle:
                time.sleep(0.5)  # workers notice the new generation within 0.2 s
                return True
            time.sleep(0.05)
        return False

    def resume(self) -> None:
        self.paused.clear()

    def forget(self, port: int) -> None:
        """The host at `port` is gone: workers drop their connections to it before reusing them."""
        with self.lock:
            self.port_epoch[port] = self.port_epoch.get(port, 0) + 1

    def _pace(self) -> None:
        period = 1.0 / self.rate
        next_t = time.monotonic()
        i = 0
        while not self.stopping.is_set() and self.dispatched < self.limit:
            now = time.monotonic()
            if now < next_t:
                time.sleep(min(next_t - now, 0.1))
                continue
            next_t = max(next_t + period, now - 1.0)  # never more than 1 s of catching up
            if self.paused.is_set():
                continue
            kind = self.cycle[i % len(self.cycle)]
            try:
                self.queue.put_nowait((kind, i))
                self.dispatched += 1
            except queue.Full:
                self.dropped += 1
            i += 1

    def check(self) -> None:
        """Raises if a load thread died (a bug in this driver, not in hearth)."""
        if self.crashed:
            raise BenchError(f"a load thread failed:\n{self.crashed[0]}")

    def _work(self) -> None:
        try:
            self._work_loop()
        except Exception:  # noqa: BLE001 - reported by check()
            self.crashed.append(traceback.format_exc())

    def _work_loop(self) -> None:
        conns: dict[int, list] = {}  # port -> [connection, uses, epoch]
        generation = self.generation
        n = 0
        while True:
            if self.generation != generation:
                generation = self.generation
                for c, *_ in conns.values():
                    c.close()
                conns.clear()
            try:
                kind, i = self.queue.get(timeout=0.2)
            except queue.Empty:
                if self.stopping.is_set():
                    break
                continue
            ports = self.targets()
            if not ports:
                continue
            port = ports[(i + n) % len(ports)]
            n += 1
            with self.lock:
                self.in_flight += 1
            try:
                self._one(conns, port, kind, i)
            finally:
                with self.lock:
                    self.in_flight -= 1
        for c, *_ in conns.values():
            c.close()

    def _one(self, conns: dict, port: int, kind: Kind, i: int) -> None:
        method, path, body = kind.request(i)
        start = time.monotonic()
        status, text = None, ""
        epoch = self.port_epoch.get(port, 0)
        for attempt in (0, 1):
            entry = conns.get(port)
            if entry is not None and entry[2] != epoch:
                entry[0].close()
                entry = None
            reused = entry is not None
            if entry is None:
                entry = conns[port] = [http.client.HTTPConnection(HOST, port, timeout=self.timeout), 0, epoch]
            conn = entry[0]
            got_answer = False
            try:
                conn.request(method, path, body=body, headers={"Host": kind.host})
                resp = conn.getresponse()
                got_answer = True
                status, text = resp.status, resp.read().decode(errors="replace")
                entry[1] += 1
                if resp.will_close or entry[1] >= RECYCLE_AFTER:
                    conn.close()
                    del conns[port]
                break
            except (OSError, http.client.HTTPException) as e:
                conn.close()
                conns.pop(port, None)
                stale = isinstance(e, (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError))
                if attempt == 0 and reused and stale and not got_answer:
                    with self.lock:
                        self.retries += 1
                    continue
                status, text = None, f"{type(e).__name__}: {e}"
                break
        end = time.monotonic()
        key = str(status) if status is not None else text.split(":")[0]
        good = status is not None and kind.check(status, text)
        with self.lock:
            st = self.stats[kind.name]
            st.sent += 1
            st.answers[key] = st.answers.get(key, 0) + 1
            st.total_s += end - start
            st.max_s = max(st.max_s, end - start)
            if good:
                st.ok += 1
                return
            if len(st.failures) < MAX_FAILURES:
                st.failures.append((start, end, key, port, path, text[:200]))
            else:
                st.overflow += 1

    def _split(self, st: KindStats) -> tuple[list, list]:
        """A kind's failures: (unexpected, during a kill)."""
        unexpected, during = [], []
        for f in st.failures:
            (during if self.in_kill_window(f[0], f[1]) else unexpected).append(f)
        return unexpected, during

    def _example(self, f: tuple, during: bool) -> dict:
        start, end, key, port, path, body = f
        return {"at_s": round(start - self.t0, 3), "took_s": round(end - start, 3), "port": port, "path": path,
                "answer": key, "body": body, "during_kill": during}  # fmt: skip

    def totals(self) -> dict:
        with self.lock:
            split = [self._split(s) for s in self.stats.values()]
            return {
                "sent": sum(s.sent for s in self.stats.values()),
                "unexpected": sum(len(u) for u, _ in split) + sum(s.overflow for s in self.stats.values()),
                "during_kill": sum(len(d) for _, d in split),
            }

    def report(self) -> dict:
        with self.lock:
            out = {}
            for k in self.kinds:
                s = self.stats[k.name]
                unexpected, during = self._split(s)
                by_answer = lambda fs: {a: sum(1 for f in fs if f[2] == a) for a in sorted({f[2] for f in fs})}  # noqa: E731
                examples = [self._example(f, False) for f in unexpected[:EXAMPLES_PER_KIND]]
                examples += [self._example(f, True) for f in during[: max(0, EXAMPLES_PER_KIND - len(examples))]]
                out[k.name] = {
                    "route": f"{k.method} {k.host}{k.path(0)}",
                    "expected": k.expect,
                    "sent": s.sent,
                    "expected_answers": s.ok,
                    "answers": dict(sorted(s.answers.items())),
                    "unexpected": len(unexpected) + s.overflow,
                    "unexpected_by_answer": by_answer(unexpected),
                    "during_kill": len(during),
                    "during_kill_by_answer": by_answer(during),
                    "mean_ms": round(1000 * s.total_s / s.sent, 2) if s.sent else None,
                    "max_ms": round(1000 * s.max_s, 1),
                    "examples": examples,
                }
            return out


# ---------------------------------------------------------------------------
# Samplers


def tcp_table() -> dict[int, tuple[int, int, str]]:
    """Socket inode -> (local port, remote port, state) for every TCP socket (v4 and v6)."""
    out = {}
    for f in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(f).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            if len(cols) < 10:
                continue
            local, remote, state, inode = cols[1], cols[2], cols[3], int(cols[9])
            out[inode] = (int(local.rsplit(":", 1)[1], 16), int(remote.rsplit(":", 1)[1], 16), state)
    return out


def proc_sample(pid: int, http_port: int | None = None, peer_ports: set | None = None, tcp: dict | None = None) -> dict | None:
    """RSS (KiB), open fds and threads of a live process, or None if it is gone. With its
    ingress port: its fds split into sockets and the rest, and its TCP connections into
    `ingress` (established on its HTTP port: clients, or peers forwarding to it), `peer_out`
    (to another host's HTTP port, i.e. forwarding) and `close_wait` (the other end closed,
    this process has not)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        if re.search(r"^State:\s+Z", status, re.M):
            return None
        links = []
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                links.append(os.readlink(fd))
            except OSError:
                pass
    except (OSError, ValueError):
        return None
    rss = re.search(r"^VmRSS:\s+(\d+) kB", status, re.M)
    threads = re.search(r"^Threads:\s+(\d+)", status, re.M)
    inodes = [int(x[8:-1]) for x in links if x.startswith("socket:[")]
    out = {
        "rss_kib": int(rss.group(1)) if rss else 0,
        "fds": len(links),
        "threads": int(threads.group(1)) if threads else 0,
        "sockets": len(inodes),
    }
    if http_port is not None and tcp is not None:
        conns = [tcp[i] for i in inodes if i in tcp]
        established = [c for c in conns if c[2] == "01"]
        out["ingress"] = sum(1 for c in established if c[0] == http_port)
        out["peer_out"] = sum(1 for c in established if c[1] in (peer_ports or set()))
        out["close_wait"] = sum(1 for c in conns if c[2] == "08")
    return out


_SERIES = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)")


def scrape(admin_port: int, timeout: float = 5.0) -> dict | None:
    """From a host's `/metrics`: instances in use and the pool's size, virtual connections
    open (all workloads), component instances in flight, services up and their restarts; and
    from `/v1/workloads` the workloads with a service (each holds one pool slot while it
    exists, whatever its state, so that is the pool's idle value)."""
    try:
        status, text = http_get(admin_port, "/metrics", timeout)
    except OSError:
        return None
    if status != 200:
        return None
    sums = {}
    counts = {}
    for line in text.splitlines():
        m = _SERIES.match(line)
        if not m:
            continue
        name = m.group(1)
        try:
            value = float(m.group(3))
        except ValueError:
            continue
        sums[name] = sums.get(name, 0.0) + value
        counts[name] = counts.get(name, 0) + 1
    services = None
    try:
        status, listing = http_get(admin_port, "/v1/workloads", timeout)
        if status == 200:
            services = sum(1 for w in json.loads(listing) if w.get("service"))
    except (OSError, ValueError, AttributeError):
        pass
    return {
        "pool_in_use": int(sums.get("hearth_instance_pool_in_use", 0)),
        "pool_size": int(sums.get("hearth_instance_pool_size", 0)),
        "vconns": int(sums.get("hearth_virtual_connections", 0)),
        "in_flight": int(sums.get("hearth_component_in_flight", 0)),
        "services": services if services is not None else counts.get("hearth_service_up", 0),
        "services_up": int(sums.get("hearth_service_up", 0)),
        "restarts": int(sums.get("hearth_service_restarts", 0)),
        "workloads": int(sums.get("hearth_workloads", 0)),
    }
