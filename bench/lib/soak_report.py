"""What a soak run's samples say (stdlib only, Python 3.11). Used by soak_bench.py.

`growth(out)`: per process incarnation, its growth after its own warm-up: under load (the
last warm-up sample against the last sample under load) and quiet to quiet (the first quiet
sample after its warm-up against the last one). A host's warm-up is `warmup_s` from its start
or from the last change of the number of workloads it runs (a killed peer's replicas placed
on it), whichever is later. `verdict(out)`: the issue's targets, judged on the hosts that
lived past their warm-up. `print_report(out)`.
"""

from __future__ import annotations

RSS_TARGET_PCT = 5.0
SIDE_PROCESSES = ("controller", "nats")


def own_fds(p: dict) -> int:
    """A host's fds without its established connections on the HTTP ingress and to peers'
    ingress: in a quiet sample the client has closed its own, so what is left of those is the
    hosts' pooled forwarding connections to one another, which come and go with the pool."""
    return p["fds"] - p.get("ingress", 0) - p.get("peer_out", 0)


def pct(a: int, b: int) -> float:
    return round(100 * (b - a) / a, 2) if a else 0.0


def mib(kib: int) -> float:
    return round(kib / 1024, 1)


def slope(points: list) -> float | None:
    """Least-squares RSS trend in MiB per hour."""
    if len(points) < 3:
        return None
    xs = [t / 3600 for t, _ in points]
    ys = [p["rss_kib"] / 1024 for _, p in points]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return round(sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / den, 2) if den else None


def growth(out: dict) -> list[dict]:
    warmup_s = out["warmup_s"]
    result = []
    sides = [{"name": n, "inc": 1, "start_t": 0.0} for n in SIDE_PROCESSES]
    for inc in out["incarnations"] + sides:
        name = inc["name"]
        rows = [(r["t"], r["phase"], r["procs"][name]) for r in out["samples"]
                if name in r["procs"] and r["procs"][name]["inc"] == inc["inc"]]  # fmt: skip
        if not rows:
            continue
        # The last sample before the workloads took their final number, if they changed.
        changed = inc["start_t"]
        for (ta, _, a), (_, _, b) in zip(rows, rows[1:]):
            if a.get("workloads") != b.get("workloads"):
                changed = ta
        cut = max(inc["start_t"], changed) + warmup_s
        loaded = [(t, p) for t, ph, p in rows if ph == "load"]
        quiet = [(t, p) for t, ph, p in rows if ph == "quiet" and t >= cut]
        g = {"process": f"{name}#{inc['inc']}", "host": name not in SIDE_PROCESSES, "start_t": inc["start_t"],
             "end_t": inc.get("end_t"), "warmup_until_t": round(cut, 1), "samples": len(rows)}  # fmt: skip
        base = [x for x in loaded if x[0] <= cut + 0.5] or loaded[:1]
        after = [x for x in loaded if base and x[0] > base[-1][0]]
        g["lived_past_warmup"] = len(after) >= 2
        if not g["lived_past_warmup"]:
            after = []
        if after:
            (t0, b), (t1, e) = base[-1], after[-1]
            g["load"] = {
                "from_t": t0, "to_t": t1,
                "rss_mib": [mib(b["rss_kib"]), mib(e["rss_kib"])], "rss_growth_pct": pct(b["rss_kib"], e["rss_kib"]),
                "rss_max_mib": mib(max(p["rss_kib"] for _, p in after)), "rss_slope_mib_per_h": slope([base[-1], *after]),
                "fds": [b["fds"], e["fds"]], "fd_growth": e["fds"] - b["fds"],
                "non_socket_fds": [b["fds"] - b["sockets"], e["fds"] - e["sockets"]],
                "threads": [b["threads"], e["threads"]],
                "workloads": [b.get("workloads"), e.get("workloads")],
                # The pool keeps used slots warm (resident): a new peak of instances in flight
                # steps RSS up for good. Samples only catch instants; a peak between them is missed.
                "pool_peak": [max((p.get("pool_in_use", 0) for t, p in loaded if t <= t0), default=0),
                              max(p.get("pool_in_use", 0) for _, p in after)],
            }  # fmt: skip
        if len(quiet) >= 2:
            (t0, b), (t1, e) = quiet[0], quiet[-1]
            g["quiet"] = {
                "from_t": t0, "to_t": t1,
                "rss_mib": [mib(b["rss_kib"]), mib(e["rss_kib"])], "rss_growth_pct": pct(b["rss_kib"], e["rss_kib"]),
                "fds": [b["fds"], e["fds"]], "own_fds": [own_fds(b), own_fds(e)], "fd_growth": own_fds(e) - own_fds(b),
                "peer_connections": [b.get("ingress", 0) + b.get("peer_out", 0), e.get("ingress", 0) + e.get("peer_out", 0)],
                "workloads": [b.get("workloads"), e.get("workloads")],
            }  # fmt: skip
        last = [(t, p) for t, ph, p in rows if ph == "quiet"]
        if last and "pool_in_use" in last[-1][1] and last[-1][0] == out["samples"][-1]["t"]:
            e = last[-1][1]
            g["idle_at_end"] = {
                "pool_in_use": e["pool_in_use"], "pool_idle": e["services"], "vconns": e["vconns"],
                "in_flight": e["in_flight"], "service_restarts": e["restarts"], "close_wait": e.get("close_wait"),
                "peer_connections": e.get("ingress", 0) + e.get("peer_out", 0),
            }  # fmt: skip
        result.append(g)
    return result


def _stable(part: dict) -> bool:
    """The host ran the same number of workloads at both ends (a host given a killed peer's
    replicas grows for that reason)."""
    return len(set(part["workloads"])) == 1


def verdict(out: dict) -> dict:
    hosts = [g for g in out["growth"] if g["host"]]
    rss = [g["load"]["rss_growth_pct"] for g in hosts if "load" in g and _stable(g["load"])]
    rss += [g["quiet"]["rss_growth_pct"] for g in hosts if "quiet" in g and _stable(g["quiet"])]
    fds = [g["quiet"]["fd_growth"] for g in hosts if "quiet" in g and _stable(g["quiet"])]
    # Under load the client's connections come and go; the fds that are not sockets must not.
    fds += [g["load"]["non_socket_fds"][1] - g["load"]["non_socket_fds"][0] for g in hosts if "load" in g and _stable(g["load"])]
    idle = [g["idle_at_end"] for g in hosts if "idle_at_end" in g]
    unexpected = sum(r["unexpected"] for r in out["requests"].values())
    return {
        "rss_growth_pct_max": max(rss) if rss else None,
        "rss_ok": bool(rss) and max(rss) < RSS_TARGET_PCT,
        "fd_growth_max": max(fds) if fds else None,
        "fd_ok": bool(fds) and max(fds) <= 0,
        "idle_ok": bool(idle) and all(i["pool_in_use"] == i["pool_idle"] and i["vconns"] == 0 for i in idle),
        "unexpected": unexpected,
        "unexpected_ok": unexpected == 0,
        "during_kill": sum(r["during_kill"] for r in out["requests"].values()),
    }


def cell(p: dict) -> str:
    s = f"{p['rss_kib'] / 1024:.1f}M {p['fds']}fd"
    if "ingress" in p:
        s += f"/{p['ingress'] + p['peer_out']}c"
    if "pool_in_use" in p:
        s += f" w{p.get('workloads', '?')} p{p['pool_in_use']}/{p.get('services', '?')} v{p['vconns']}"
    return s


def print_report(out: dict) -> None:
    names = list(dict.fromkeys(n for r in out["samples"] for n in r["procs"]))
    width = {n: max(len(n), *(len(cell(r["procs"][n])) + 3 for r in out["samples"] if n in r["procs"])) for n in names}
    print()
    print("Samples: #incarnation, RSS (MiB), open fds/of them TCP connections on the ingress or to a peer's;")
    print("for hosts: workloads, instances in use/idle value (one per service), virtual connections open")
    print(f"{'t(s)':>6} {'phase':5} " + " ".join(f"{n:>{width[n]}}" for n in names) + f" {'requests':>9} {'unexp':>5}")
    for r in out["samples"]:
        cells = [(f"#{r['procs'][n]['inc']} " + cell(r["procs"][n])) if n in r["procs"] else "-" for n in names]
        req = r["requests"]
        print(f"{r['t']:>6.0f} {r['phase']:5} " + " ".join(f"{c:>{width[n]}}" for c, n in zip(cells, names))
              + f" {req['sent']:>9} {req['unexpected']:>5}")  # fmt: skip
    print()
    print(f"Growth after warm-up (warm-up: {out['warmup_s']:.0f} s from a process's start or from the last change of its workloads)")
    for g in out["growth"]:
        head = f"  {g['process']:13}"
        if "load" in g:
            ld = g["load"]
            trend = f", trend {ld['rss_slope_mib_per_h']:+.1f} MiB/h" if ld["rss_slope_mib_per_h"] is not None else ""
            print(f"{head} under load t={ld['from_t']:.0f}..{ld['to_t']:.0f}s: RSS {ld['rss_mib'][0]} -> {ld['rss_mib'][1]} MiB "
                  f"({ld['rss_growth_pct']:+.2f} %, max {ld['rss_max_mib']}{trend}); fds {ld['fds'][0]} -> {ld['fds'][1]}, "
                  f"not sockets {ld['non_socket_fds'][0]} -> {ld['non_socket_fds'][1]}; threads "
                  f"{ld['threads'][0]} -> {ld['threads'][1]}")  # fmt: skip
            if g["host"]:
                print(f"  {'':13} most instances in use in a sample: {ld['pool_peak'][0]} up to t={ld['from_t']:.0f}s, "
                      f"{ld['pool_peak'][1]} after{' (a new peak: warm pool slots add RSS)' if ld['pool_peak'][1] > ld['pool_peak'][0] else ''}")  # fmt: skip
            if g["host"] and not _stable(ld):
                print(f"  {'':13} workloads {ld['workloads'][0]} -> {ld['workloads'][1]} (a killed peer's replicas): not judged")
        else:
            end = f"{g['end_t']:.0f}" if g["end_t"] is not None else "end"
            print(f"{head} did not live past its warm-up (lived t={g['start_t']:.0f}..{end}s, warm-up until {g['warmup_until_t']:.0f}s)")
        if "quiet" in g:
            q = g["quiet"]
            conns = f" (+ {q['peer_connections'][0]} -> {q['peer_connections'][1]} pooled connections between hosts)" if any(q["peer_connections"]) else ""
            print(f"  {'':13} quiet t={q['from_t']:.0f} vs {q['to_t']:.0f}s: RSS {q['rss_mib'][0]} -> {q['rss_mib'][1]} MiB "
                  f"({q['rss_growth_pct']:+.2f} %); fds {q['own_fds'][0]} -> {q['own_fds'][1]} ({q['fd_growth']:+d}){conns}")  # fmt: skip
        if "idle_at_end" in g:
            i = g["idle_at_end"]
            print(f"  {'':13} after the last quiet period: instances in use {i['pool_in_use']} (idle {i['pool_idle']}), "
                  f"virtual connections {i['vconns']} (idle 0), sockets in CLOSE_WAIT {i['close_wait']}, "
                  f"service restarts {i['service_restarts']}")  # fmt: skip
    print()
    print("Requests per kind (unexp: not the expected answer; kill: unexpected, but within a kill window)")
    print(f"  {'kind':17} {'sent':>8} {'unexp':>6} {'kill':>5} {'mean ms':>8} {'max ms':>8}  expected; answers")
    for k, r in out["requests"].items():
        answers = " ".join(f"{a}={n}" for a, n in r["answers"].items())
        print(f"  {k:17} {r['sent']:>8} {r['unexpected']:>6} {r['during_kill']:>5} {r['mean_ms'] or 0:>8.1f} "
              f"{r['max_ms']:>8.1f}  {r['expected']}; {answers}")  # fmt: skip
        for ex in r["examples"][:3]:
            print(f"  {'':17}   e.g. t={ex['at_s']:.1f}s {ex['answer']}{' (kill)' if ex['during_kill'] else ''}: "
                  f"{ex['body'].strip()[:100]!r}")  # fmt: skip
    ld = out["load"]
    print(f"  load: {ld['dispatched']} dispatched, {ld['dropped']} ticks dropped (all workers busy), "
          f"{ld['retries']} retried once on a fresh connection (a kept-alive one was found closed)")  # fmt: skip
    if out["kills"]:
        print("  kills: " + ", ".join(f"{k['host']}@{k['t']:.0f}s (serving again after {k['back_after_s']} s)" for k in out["kills"]))
    v = out["verdict"]
    yes = lambda ok: "met" if ok else "NOT met"  # noqa: E731
    print()
    print("Targets (judged on the hosts that lived past their warm-up)")
    print(f"  RSS growth after warm-up < {RSS_TARGET_PCT:g} %: max {v['rss_growth_pct_max']} % -> {yes(v['rss_ok'])}")
    print(f"  fd growth 0 (quiet to quiet, and fds other than sockets under load): max {v['fd_growth_max']} -> {yes(v['fd_ok'])}")
    print(f"  instances in use and virtual connections back to idle at the end: {yes(v['idle_ok'])}")
    print(f"  unexpected answers 0: {v['unexpected']} -> {yes(v['unexpected_ok'])}"
          + (f" ({v['during_kill']} more within kill windows)" if out["kills"] else ""))  # fmt: skip
