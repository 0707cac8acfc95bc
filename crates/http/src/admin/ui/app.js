// hearth dashboard: polls the admin API every second and updates the page in place.
//
// Sources: GET /v1/workloads (workloads, counters, services, topology), GET /metrics
// (invocations by outcome and the latency histogram, for error ratios and percentiles from
// the difference between samples), GET /v1/cluster (hosts, heartbeat ages, placements and
// rollouts; a host in no cluster answers 404 and the panel stays hidden), and the followed
// log stream of the selected workload.
// Nothing is rebuilt on a tick unless a workload's shape (its generation) changed.
"use strict";

const TICK_MS = 1000;
const WINDOW_S = 10; // error ratio and latency percentiles look this far back
const HISTORY = 60; // samples kept (and drawn in each sparkline)
const LOG_LINES = 200;

const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("data-")) node.setAttribute(k, v);
    else node[k] = v;
  }
  for (const c of children) if (c != null) node.append(c);
  return node;
}

function svg(tag, attrs) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  return node;
}

/** Sets text only when it changed, so nothing repaints needlessly. */
function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

// ---------- formatting ----------

function fmtRate(r) {
  if (r == null) return "–";
  if (r === 0) return "0";
  if (r < 10) return r.toFixed(1);
  return Math.round(r).toLocaleString("en-US");
}

function fmtSeconds(s) {
  if (s == null) return "–";
  if (s < 0.001) return (s * 1000).toFixed(2) + " ms";
  if (s < 0.01) return (s * 1000).toFixed(1) + " ms";
  if (s < 1) return Math.round(s * 1000) + " ms";
  return s.toFixed(2) + " s";
}

function fmtRatio(r) {
  if (r == null) return "–";
  if (r === 0) return "0%";
  if (r < 0.001) return "<0.1%";
  return (r * 100).toFixed(r < 0.1 ? 1 : 0) + "%";
}

function fmtAge(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  if (s < 60) return s + "s";
  if (s < 3600) return Math.floor(s / 60) + "m " + (s % 60) + "s";
  if (s < 86400) return Math.floor(s / 3600) + "h " + Math.floor((s % 3600) / 60) + "m";
  return Math.floor(s / 86400) + "d " + Math.floor((s % 86400) / 3600) + "h";
}

function fmtCount(n) {
  return Number(n || 0).toLocaleString("en-US");
}

function fmtClock(ms) {
  const d = new Date(ms);
  const p = (n, w) => String(n).padStart(w, "0");
  return p(d.getHours(), 2) + ":" + p(d.getMinutes(), 2) + ":" + p(d.getSeconds(), 2) + "." + p(d.getMilliseconds(), 3);
}

// ---------- Prometheus text ----------

/** Parses the series the dashboard reads from a scrape: per `workload/component`, the
 *  invocations by outcome and the cumulative latency buckets. */
function parseMetrics(text) {
  const out = new Map();
  const entry = (labels) => {
    const key = labels.workload + "/" + labels.component;
    let e = out.get(key);
    if (!e) out.set(key, (e = { outcomes: {}, buckets: [] }));
    return e;
  };
  for (const line of text.split("\n")) {
    if (!line.startsWith("hearth_component_")) continue;
    const m = /^(\w+)\{(.*)\}\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels = {};
    for (const l of m[2].matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2];
    const value = Number(m[3]);
    if (m[1] === "hearth_component_invocations_total") {
      entry(labels).outcomes[labels.outcome] = value;
    } else if (m[1] === "hearth_component_duration_seconds_bucket") {
      const le = labels.le === "+Inf" ? Infinity : Number(labels.le);
      entry(labels).buckets.push([le, value]);
    }
  }
  for (const e of out.values()) e.buckets.sort((a, b) => a[0] - b[0]);
  return out;
}

/** The q-quantile of the observations between two cumulative bucket lists, interpolated
 *  inside the bucket as Prometheus's histogram_quantile does. */
function quantile(q, now, then) {
  if (!now || now.length === 0) return null;
  const before = new Map((then || []).map(([le, c]) => [le, c]));
  const delta = now.map(([le, c]) => [le, c - (before.get(le) || 0)]);
  const total = delta[delta.length - 1][1];
  if (!(total > 0)) return null;
  const rank = q * total;
  let prevLe = 0, prevCount = 0;
  for (const [le, count] of delta) {
    if (count >= rank) {
      if (le === Infinity) return prevLe;
      const inBucket = count - prevCount;
      return inBucket > 0 ? prevLe + (le - prevLe) * ((rank - prevCount) / inBucket) : le;
    }
    prevLe = le;
    prevCount = count;
  }
  return prevLe;
}

const ERROR_OUTCOMES = ["server_error", "trapped", "timed_out", "rejected"];

// ---------- state ----------

const samples = []; // { t, workloads: [...status], metrics: Map|null }
const views = new Map(); // workload name -> view (its DOM and references)
let selected = null;
let metricsOn = true;
let clusterOn = true;

async function getJSON(path) {
  const r = await fetch(path, { credentials: "same-origin", cache: "no-store" });
  if (r.status === 401) throw new Error("unauthorized");
  if (!r.ok) throw new Error(path + ": " + r.status);
  return r.json();
}

async function getMetrics() {
  if (!metricsOn) return null;
  const r = await fetch("/metrics", { credentials: "same-origin", cache: "no-store" });
  if (r.status === 404) {
    metricsOn = false; // the process records no metrics: rates and totals only
    return null;
  }
  if (!r.ok) return null;
  return parseMetrics(await r.text());
}

async function getCluster() {
  if (!clusterOn) return null;
  const r = await fetch("/v1/cluster", { credentials: "same-origin", cache: "no-store" });
  if (r.status === 404) {
    clusterOn = false; // a single host: no cluster panel
    return null;
  }
  if (!r.ok) return null;
  return r.json();
}

async function tick() {
  const live = $("live");
  try {
    const [workloads, metrics, cluster] = await Promise.all([getJSON("/v1/workloads"), getMetrics(), getCluster()]);
    samples.push({ t: performance.now() / 1000, workloads, metrics });
    while (samples.length > HISTORY + 1) samples.shift();
    render(workloads, metrics);
    renderCluster(cluster);
    live.dataset.state = "live";
    setText($("live-text"), "live · " + fmtClock(Date.now()).slice(0, 8));
  } catch (e) {
    live.dataset.state = "down";
    if (String(e.message) === "unauthorized") {
      setText($("live-text"), "signed out: reload to sign in");
    } else {
      setText($("live-text"), "host unreachable");
    }
  }
}

/** The sample about `seconds` before the newest one (or the oldest kept). */
function sampleAgo(seconds) {
  const last = samples[samples.length - 1];
  for (let i = samples.length - 2; i >= 0; i--) {
    if (last.t - samples[i].t >= seconds - 0.25) return samples[i];
  }
  return samples.length > 1 ? samples[0] : null;
}

function componentIn(sample, workload, component) {
  const w = sample && sample.workloads.find((x) => x.name === workload);
  return w && w.components.find((c) => c.name === component);
}

/** A component's live numbers from the kept samples. */
function numbers(w, c) {
  const last = samples[samples.length - 1];
  const prev = samples.length > 1 ? samples[samples.length - 2] : null;
  const key = w.name + "/" + c.name;
  const out = { rate: null, errors: null, errCount: null, p50: null, p99: null, history: [] };
  const pc = componentIn(prev, w.name, c.name);
  if (pc && last.t > prev.t) out.rate = Math.max(0, (c.stats.requests - pc.stats.requests) / (last.t - prev.t));
  for (let i = 1; i < samples.length; i++) {
    const a = componentIn(samples[i - 1], w.name, c.name);
    const b = componentIn(samples[i], w.name, c.name);
    const dt = samples[i].t - samples[i - 1].t;
    out.history.push(a && b && dt > 0 ? Math.max(0, (b.stats.requests - a.stats.requests) / dt) : 0);
  }
  const old = sampleAgo(WINDOW_S);
  if (!old) return out;
  const m = last.metrics && last.metrics.get(key);
  const om = old.metrics && old.metrics.get(key);
  if (m) {
    const sum = (o) => Object.values(o || {}).reduce((a, b) => a + b, 0);
    const errs = (o) => ERROR_OUTCOMES.reduce((a, k) => a + ((o || {})[k] || 0), 0);
    const total = sum(m.outcomes) - sum(om && om.outcomes);
    out.errCount = errs(m.outcomes) - errs(om && om.outcomes);
    out.errors = total > 0 ? out.errCount / total : 0;
    out.p50 = quantile(0.5, m.buckets, om && om.buckets);
    out.p99 = quantile(0.99, m.buckets, om && om.buckets);
  } else {
    const oc = componentIn(old, w.name, c.name);
    if (oc) {
      const total = c.stats.requests - oc.stats.requests;
      const bad = (s) => s.failed + s.timedOut + s.rejected;
      out.errCount = bad(c.stats) - bad(oc.stats);
      out.errors = total > 0 ? out.errCount / total : 0;
    }
  }
  return out;
}

// ---------- rendering ----------

function render(workloads, metrics) {
  const names = new Set(workloads.map((w) => w.name));
  for (const [name, view] of views) {
    if (!names.has(name)) {
      view.root.remove();
      views.delete(name);
    }
  }
  $("empty").hidden = workloads.length > 0;
  let totalRate = 0, totalInFlight = 0, totalErrors = 0, anyErrors = false;
  const container = $("workloads");
  workloads.forEach((w, i) => {
    let view = views.get(w.name);
    if (!view || view.generation !== w.generation) {
      const fresh = buildWorkload(w);
      if (view) view.root.replaceWith(fresh.root);
      else container.append(fresh.root);
      views.set(w.name, (view = fresh));
    }
    if (container.children[i + 1] !== view.root) container.insertBefore(view.root, container.children[i + 1] || null);
    const sums = updateWorkload(view, w);
    totalRate += sums.rate;
    totalInFlight += sums.inFlight;
    if (sums.errors != null) {
      totalErrors += sums.errors;
      anyErrors = true;
    }
  });
  if (!selected || !names.has(selected)) select(workloads.length ? workloads[0].name : null);
  setText($("t-workloads"), String(workloads.length));
  setText($("t-rate"), samples.length > 1 ? fmtRate(totalRate) : "–");
  setText($("t-inflight"), String(totalInFlight));
  setText($("t-errors"), anyErrors ? fmtCount(Math.round(totalErrors)) : "–");
}

function buildWorkload(w) {
  const view = { generation: w.generation, rows: new Map() };
  const name = el("span", { class: "wl-name", text: w.name });
  view.meta = el("span", { class: "wl-meta" });
  view.rate = el("b");
  const head = el("div", { class: "wl-head", title: "Follow this workload's log lines" },
    name, view.meta, el("span", { class: "wl-rate" }, view.rate, " req/s"));
  head.addEventListener("click", () => select(w.name));
  view.root = el("article", { class: "wl", "data-workload": w.name }, head);

  if (w.components.length) {
    const cols = ["Component", "Route", "Last 60 s", "req/s", "errors " + WINDOW_S + "s", "p50", "p99", "in flight", "requests"];
    const thead = el("thead", {}, el("tr", {}, ...cols.map((c) => el("th", { text: c }))));
    const tbody = el("tbody");
    for (const c of w.components) {
      const row = { cells: {} };
      const cell = (k) => (row.cells[k] = el("td", { "data-col": k }));
      const route = c.route ? (c.route.host || "*") + c.route.path : "—";
      const spark = svg("svg", { class: "spark", viewBox: "0 0 " + HISTORY + " 20", preserveAspectRatio: "none" });
      row.area = svg("polygon", { points: "" });
      row.line = svg("polyline", { points: "" });
      spark.append(row.area, row.line);
      const tr = el("tr", { "data-component": c.name },
        el("td", { class: "name", text: c.name }),
        el("td", { class: "route", text: route, title: route }),
        el("td", { class: "spark" }, spark),
        cell("rate"), cell("errors"), cell("p50"), cell("p99"), cell("inFlight"), cell("requests"));
      tbody.append(tr);
      view.rows.set(c.name, row);
    }
    view.root.append(el("table", { class: "comps" }, thead, tbody));
  }
  if (w.service) {
    view.svc = {
      state: el("span", { class: "pill" }),
      restarts: el("b", { class: "restarts" }),
      ports: el("span", { class: "mono" }),
      exit: el("span", { class: "exit" }),
    };
    view.root.append(el("div", { class: "svc", "data-service": w.name },
      el("span", { class: "label", text: "service" }), view.svc.state,
      el("span", {}, el("span", { class: "label", text: "restarts " }), view.svc.restarts),
      el("span", {}, el("span", { class: "label", text: "ports " }), view.svc.ports),
      view.svc.exit));
  }
  view.root.append(buildTopology(w));
  return view;
}

/** Groups a part's WASI imports by package (`wasi:io` rather than five `wasi:io/...`). */
function wasiPackages(imports) {
  const seen = [];
  for (const i of imports) {
    const pkg = i.interface.split("/")[0];
    if (!seen.includes(pkg)) seen.push(pkg);
  }
  return seen;
}

function buildTopology(w) {
  const parts = el("div", { class: "parts" });
  for (const p of w.topology || []) {
    const card = el("div", { class: "part" + (p.service ? " service" : ""), "data-part": p.part },
      el("h3", {}, p.part, el("span", { class: "kind", text: p.service ? "service" : "component" })));
    const links = p.imports.filter((i) => i.kind === "link");
    const host = p.imports.filter((i) => i.kind === "host");
    const wasi = p.imports.filter((i) => i.kind === "wasi");
    if (links.length) {
      card.append(el("div", { class: "sect", text: "calls (WIT links)" }));
      card.append(el("ul", {}, ...links.map((i) => el("li", { class: "link", title: i.interface + " → " + i.by + " exports " + i.export },
        el("span", { class: "iface", text: i.interface }), el("span", { class: "arrow", text: "→" }),
        el("span", { class: "by", text: i.by })))));
    }
    if (host.length) {
      card.append(el("div", { class: "sect", text: "host interfaces → backend" }));
      card.append(el("ul", {}, ...host.map((i) => el("li", { class: "host", title: i.interface + " is served by the " + i.by + " backend" },
        el("span", { class: "iface", text: i.interface }), el("span", { class: "arrow", text: "→" }),
        el("span", { class: "by", text: i.by })))));
    }
    if (wasi.length) {
      card.append(el("div", { class: "sect", text: "WASI" }));
      card.append(el("div", { class: "chips" }, ...wasiPackages(wasi).map((pkg) => el("span", { class: "chip", text: pkg }))));
    }
    const exports = p.exports.filter((e) => !e.startsWith("wasi:cli/run") || p.service);
    if (exports.length) {
      card.append(el("div", { class: "sect", text: "exports" }));
      card.append(el("div", { class: "chips" }, ...exports.map((e) => el("span", { class: "chip export", text: e }))));
    }
    parts.append(card);
  }
  const details = el("details", { class: "topo", open: true }, el("summary", { text: "Topology" }), parts);
  return details;
}

function updateWorkload(view, w) {
  const now = Date.now() / 1000;
  const sums = { rate: 0, inFlight: 0, errors: null };
  setText(view.meta, "gen " + w.generation + " · up " + fmtAge(now - w.started) + " · " +
    w.components.length + (w.components.length === 1 ? " component" : " components") +
    (w.service ? " + service" : ""));
  for (const c of w.components) {
    const row = view.rows.get(c.name);
    if (!row) continue;
    const n = numbers(w, c);
    sums.rate += n.rate || 0;
    sums.inFlight += c.stats.inFlight;
    if (n.errCount != null) sums.errors = (sums.errors || 0) + n.errCount;
    setText(row.cells.rate, fmtRate(n.rate));
    row.cells.rate.classList.toggle("num-zero", !n.rate);
    setText(row.cells.errors, fmtRatio(n.errors));
    row.cells.errors.className = n.errors > 0.05 ? "bad" : n.errors > 0 ? "warn" : "num-zero";
    setText(row.cells.p50, fmtSeconds(n.p50));
    setText(row.cells.p99, fmtSeconds(n.p99));
    setText(row.cells.inFlight, String(c.stats.inFlight));
    row.cells.inFlight.classList.toggle("num-zero", c.stats.inFlight === 0);
    setText(row.cells.requests, fmtCount(c.stats.requests));
    drawSpark(row, n.history);
  }
  setText(view.rate, fmtRate(samples.length > 1 ? sums.rate : null));
  if (view.svc && w.service) {
    const s = w.service;
    setText(view.svc.state, s.state);
    view.svc.state.dataset.state = s.state;
    setText(view.svc.restarts, String(s.restarts));
    const ports = [];
    for (const p of s.listening) {
      const pub = s.published.find((x) => x.port === p);
      ports.push(":" + p + (pub ? " ← " + pub.host : ""));
    }
    for (const pub of s.published) if (!s.listening.includes(pub.port)) ports.push(":" + pub.port + " ← " + pub.host + " (not listening)");
    setText(view.svc.ports, ports.length ? ports.join("  ") : "none listening");
    setText(view.svc.exit, s.lastExit ? "last exit: " + s.lastExit : "");
    view.svc.exit.title = s.lastExit || "";
  }
  return sums;
}

function drawSpark(row, history) {
  const h = history.slice(-HISTORY);
  const max = Math.max(1, ...h);
  const x0 = HISTORY - h.length;
  const pts = h.map((v, i) => (x0 + i) + "," + (19 - (v / max) * 17).toFixed(1)).join(" ");
  row.line.setAttribute("points", pts);
  row.area.setAttribute("points", h.length ? x0 + ",20 " + pts + " " + (HISTORY - 1) + ",20" : "");
}

// ---------- log tail ----------

let logAbort = null;

function select(name) {
  if (name === selected && logAbort) return;
  selected = name;
  for (const [n, v] of views) v.root.dataset.selected = String(n === name);
  if (logAbort) logAbort.abort();
  logAbort = null;
  $("log-lines").replaceChildren();
  setText($("log-workload"), name ? "· " + name : "");
  if (name) follow(name);
  else setText($("log-status"), "No workload to follow.");
}

async function follow(name) {
  const abort = new AbortController();
  logAbort = abort;
  setText($("log-status"), "following " + name + "…");
  try {
    const r = await fetch("/v1/workloads/" + encodeURIComponent(name) + "/logs?follow=1",
      { credentials: "same-origin", signal: abort.signal, cache: "no-store" });
    if (!r.ok || !r.body) throw new Error("status " + r.status);
    setText($("log-status"), "following " + name + " · live");
    const reader = r.body.getReader();
    const decoder = new TextDecoder();
    let buffered = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffered += decoder.decode(value, { stream: true });
      let nl;
      while ((nl = buffered.indexOf("\n")) >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        if (line.trim()) addLogLine(line);
      }
    }
    throw new Error("the stream ended");
  } catch (e) {
    if (abort.signal.aborted) return;
    setText($("log-status"), "log stream lost (" + e.message + "); retrying…");
    setTimeout(() => { if (logAbort === abort) follow(name); }, 2000);
  }
}

function addLogLine(text) {
  let line;
  try {
    line = JSON.parse(text);
  } catch {
    return;
  }
  const list = $("log-lines");
  const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 24;
  let li;
  if (line.missed != null) {
    li = el("li", { class: "note" }, el("span", { class: "ts", text: "" }), el("span", { class: "who", text: "" }),
      el("span", { class: "msg", text: "… " + line.missed + " lines missed" }));
  } else {
    li = el("li", { "data-stream": line.stream, "data-level": line.level, title: line.stream + " · " + line.level },
      el("span", { class: "ts", text: fmtClock(line.timeMs) }),
      el("span", { class: "who", text: line.part }),
      el("span", { class: "msg", text: line.text }));
  }
  list.append(li);
  while (list.children.length > LOG_LINES) list.firstElementChild.remove();
  if (atBottom && !$("log-pause").checked) list.scrollTop = list.scrollHeight;
}

// ---------- cluster ----------

function fmtBytes(n) {
  if (!n) return "–";
  const gib = n / 1073741824;
  return gib >= 10 ? Math.round(gib) + " GiB" : gib.toFixed(1) + " GiB";
}

function fmtHeartbeat(ms) {
  return ms < 10000 ? (ms / 1000).toFixed(1) + " s ago" : fmtAge(ms / 1000) + " ago";
}

/** The cluster panel, rebuilt each tick (a handful of hosts and deployments). */
function renderCluster(c) {
  const panel = $("cluster");
  panel.hidden = !c;
  if (!c) return;
  const lost = c.hosts.filter((h) => h.state !== "ready").length;
  const plural = (n, word) => n + " " + word + (n === 1 ? "" : "s");
  setText($("cluster-sub"), plural(c.hosts.length, "host") + (lost ? " · " + lost + " lost" : "") +
    " · " + plural(c.deployments.length, "deployment") + " · seen from " + c.hostId);
  $("hosts").replaceChildren(...c.hosts.map((h) => buildHost(h, c.hostId)));
  $("deps").replaceChildren(...c.deployments.map(buildDeployment));
}

function buildHost(h, me) {
  const cap = h.capacity || {};
  const stat = (label, value) => el("span", {}, label + " ", el("b", { text: value }));
  const replicas = h.replicas.map((r) => el("span", {
    class: "chip", "data-state": r.state,
    title: r.id + " · revision " + r.revision + (r.message ? " · " + r.message : ""),
    text: r.deployment + " · " + r.state,
  }));
  const labels = Object.entries(h.labels || {}).map(([k, v]) => el("span", { class: "chip", text: k + "=" + v }));
  return el("article", { class: "host", "data-host": h.id, "data-state": h.state },
    el("h3", {}, el("span", { class: "dot" }), el("span", { text: h.id }),
      h.id === me ? el("span", { class: "me", text: "this host" }) : null,
      el("span", { class: "age", "data-age": "", text: h.state === "ready" ? fmtHeartbeat(h.heartbeatAgeMs) : "lost · " + fmtHeartbeat(h.heartbeatAgeMs) })),
    el("div", { class: "cap" },
      stat("replicas", h.replicas.length + "/" + (cap.maxReplicas || "–")),
      stat("pool", (cap.poolInUse || 0) + "/" + (cap.poolSize || "–")),
      stat("cores", String(cap.cores || "–")),
      stat("free", fmtBytes(cap.memoryFreeBytes) + " of " + fmtBytes(cap.memoryTotalBytes))),
    labels.length ? el("div", { class: "chips" }, ...labels) : null,
    replicas.length ? el("div", { class: "chips" }, ...replicas) : null);
}

function buildDeployment(d) {
  const s = d.status;
  const placed = Object.values(d.placements).reduce((n, ids) => n + ids.length, 0);
  const ready = s ? s.readyReplicas + "/" + s.replicas : d.ready + "/" + placed;
  const placement = Object.entries(d.placements).map(([host, ids]) =>
    el("span", { class: "chip", title: ids.join(", "), text: host + " ×" + ids.length }));
  const cond = (type) => s && s.conditions.find((c) => c.type === type);
  const rollout = el("div", { class: "rollout" });
  if (d.rollingOut) {
    const progressing = cond("Progressing");
    const wanted = s ? s.replicas : placed;
    const done = s ? s.updatedReplicas : d.ready;
    const pct = wanted ? Math.min(100, Math.round((100 * done) / wanted)) : 0;
    const fill = el("div", { class: "bar-fill" });
    fill.style.width = pct + "%"; // through the CSSOM: the page's CSP allows no inline style
    rollout.append(
      el("div", { class: "bar-track", title: pct + "%" }, fill),
      el("span", { text: progressing ? progressing.message : "rolling out: " + d.revisions.length + " revisions running" }));
  } else {
    rollout.append(el("span", { class: "muted", text: "steady" + (s ? " · revision " + s.revision.slice(0, 12) : "") }));
  }
  const failure = cond("ReplicaFailure");
  if (failure && failure.status === "True") rollout.append(el("span", { class: "failure", text: failure.message }));
  return el("tr", { "data-deployment": d.name, "data-rolling-out": String(d.rollingOut) },
    el("td", { class: "name", text: d.name }),
    el("td", { text: ready }),
    el("td", {}, el("div", { class: "chips" }, ...placement)),
    el("td", {}, rollout));
}

// ---------- start ----------

tick();
setInterval(tick, TICK_MS);
