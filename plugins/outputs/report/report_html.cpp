// The HTML report and the console summary. The HTML is one file: the data as JSON in a
// <script> block, and inline CSS + JS that render tables and SVG charts from it, so it opens
// from disk with no network.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>

#include "doppel/json_writer.hpp"
#include "doppel/markup.hpp"
#include "report_json.hpp"
#include "report_output.hpp"

namespace doppel::plugins {
namespace {

// Shared log-spaced bins over both distributions, so the bars line up.
void write_histogram(JsonWriter& w, const Reservoir& a, const Reservoir& b) {
  constexpr int kBins = 24;
  double lo = INFINITY, hi = 0;
  for (const Reservoir* r : {&a, &b})
    for (double v : r->values()) {
      if (v > 0) lo = std::min(lo, v);
      hi = std::max(hi, v);
    }
  w.begin_object();
  if (!(hi > 0)) {
    w.key("edges_ms").begin_array().end_array();
    w.key("original").begin_array().end_array();
    w.key("replay").begin_array().end_array();
    w.end_object();
    return;
  }
  if (!(lo < hi)) lo = hi / 2;
  double llo = std::log10(lo), lhi = std::log10(hi) + 1e-9;
  std::vector<double> edges;
  for (int i = 0; i <= kBins; ++i) edges.push_back(std::pow(10.0, llo + (lhi - llo) * i / kBins));
  auto counts = [&](const Reservoir& r) {
    std::vector<std::uint64_t> c(kBins, 0);
    for (double v : r.values()) {
      double x = v > 0 ? std::log10(v) : llo;
      int bin = static_cast<int>((x - llo) / (lhi - llo) * kBins);
      c[std::clamp(bin, 0, kBins - 1)]++;
    }
    return c;
  };
  w.key("edges_ms").begin_array();
  for (double e : edges) w.value(e);
  w.end_array();
  for (auto [name, r] : {std::pair{"original", &a}, std::pair{"replay", &b}}) {
    w.key(name).begin_array();
    for (auto c : counts(*r)) w.value(c);
    w.end_array();
  }
  w.end_object();
}

std::string now_text() {
  std::time_t t = std::time(nullptr);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S %Z", std::localtime(&t));
  return buf;
}

}  // namespace

std::string render_report_data(const ReportModel& model, const ReportConfig& config, const GoalValues& goals) {
  JsonWriter w(JsonWriterOptions{.html_safe = true});
  w.begin_object();
  w.field("title", config.title);
  w.field("generated", now_text());
  w.key("totals");
  write_totals(w, model.totals());
  w.field("noise_checks", model.totals().noise_checks);
  w.field("untracked_paths", model.untracked_paths());
  w.field("samples_per_path", static_cast<std::uint64_t>(config.limits.samples_per_path));
  w.key("histogram");
  write_histogram(w, model.totals().original_latency, model.totals().replay_latency);
  w.key("goals").begin_array();
  for (const auto& [g, v] : goals) {
    w.begin_object();
    w.field("condition", g.text);
    if (v) {
      w.field("value", format_metric(g, *v));
      w.field("missed", goal_holds(g, *v));
    } else {
      w.key("value").null();
      w.field("missed", false);
    }
    w.end_object();
  }
  w.end_array();
  w.key("endpoints").begin_array();
  for (const auto& [name, ep] : model.endpoints()) {
    w.begin_object();
    w.field("name", name);
    w.key("totals");
    write_totals(w, ep.totals);
    w.end_object();
  }
  w.end_array();
  w.key("paths").begin_array();
  for (const PathStats* p : model.top_paths(config.top_paths)) {
    w.begin_object();
    w.field("endpoint", p->endpoint);
    w.field("comparator", p->comparator);
    w.field("path", p->path);
    w.field("count", p->count);
    w.field("fail", p->fail);
    w.field("warn", p->warn);
    w.field("info", p->info);
    w.field("noise", p->noise);
    w.field("other", p->other);
    w.key("kinds").begin_object();
    for (const auto& [k, n] : p->kinds) w.field(k, n);
    w.end_object();
    w.key("samples").begin_array();
    for (const auto& sample : p->samples) write_sample(w, sample);
    w.end_array();
    w.end_object();
  }
  w.end_array();
  w.end_object();
  return w.take();
}

namespace {

constexpr const char* kHead = R"HTML(<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>)HTML";

constexpr const char* kStyle = R"HTML(</title>
<style>
:root{--ok:#2e7d32;--warn:#b26a00;--bad:#c62828;--muted:#666;--line:#ddd;--bg:#fafafa}
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#222;background:#fff}
header{padding:16px 24px;border-bottom:1px solid var(--line);background:var(--bg)}
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:28px 0 8px}
main{padding:0 24px 40px;max-width:1400px}
.muted{color:var(--muted)}
.cards{display:flex;gap:12px;flex-wrap:wrap;margin-top:12px}
.card{border:1px solid var(--line);border-radius:6px;padding:8px 14px;background:#fff;min-width:110px}
.card b{display:block;font-size:20px}
table{border-collapse:collapse;width:100%;margin:4px 0}
th,td{border-bottom:1px solid var(--line);padding:4px 8px;text-align:left;vertical-align:top}
th{background:var(--bg);font-weight:600}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
.bar{display:block;height:8px;background:var(--ok);border-radius:2px;vertical-align:middle}
.barbg{display:inline-block;width:80px;height:8px;background:#f2c6c6;border-radius:2px;margin-right:6px;vertical-align:middle}
.tag{display:inline-block;padding:0 6px;border-radius:8px;font-size:12px;color:#fff}
.tag.match{background:var(--ok)}.tag.warn{background:var(--warn)}.tag.mismatch{background:var(--bad)}
.tag.noise{background:#777}.tag.error{background:#6a1b9a}
.goal.missed{color:var(--bad);font-weight:600}.goal.met{color:var(--ok)}
details{margin:2px 0}summary{cursor:pointer}
.sample{border:1px solid var(--line);border-radius:6px;margin:8px 0;padding:8px;background:#fff}
.diff{display:grid;grid-template-columns:1fr 1fr;gap:0;font:12px/1.35 ui-monospace,Menlo,Consolas,monospace;
 border:1px solid var(--line);max-height:480px;overflow:auto}
.diff div{white-space:pre-wrap;word-break:break-all;padding:0 6px;min-height:1.35em}
.diff .hd{background:var(--bg);font-weight:600;font-family:system-ui,sans-serif;position:sticky;top:0}
.diff .del{background:#fde7e7}.diff .add{background:#e5f6e5}.diff .chg{background:#fff6d6}
.diff .gap{background:#f3f3f3}
.diff mark{background:#ffcf70;padding:0}
.kv{font:12px ui-monospace,Menlo,monospace}
svg text{font:11px system-ui,sans-serif;fill:#444}
.legend span{display:inline-block;width:10px;height:10px;margin:0 4px 0 12px;vertical-align:middle}
.live{margin-top:8px;font-size:13px}.live.on{color:var(--ok)}.live.off{color:var(--bad);font-weight:600}
</style></head><body>
<header><h1 id="title"></h1><div class="muted" id="subtitle"></div><div class="cards" id="cards"></div></header>
<main>
<section id="goals-section"><h2>Goals (fail_if)</h2><table id="goals"><thead><tr><th>condition</th><th>value</th><th>result</th></tr></thead><tbody></tbody></table></section>
<h2>Endpoints</h2>
<table id="endpoints"><thead><tr><th>endpoint</th><th class="num">total</th><th class="num">match</th><th class="num">warn</th>
<th class="num">mismatch</th><th class="num">replay error</th><th class="num">missing orig.</th><th class="num">missing replay</th>
<th>match rate</th><th class="num">p50 orig / replay (ms)</th><th class="num">p95 orig / replay (ms)</th><th class="num">p99 orig / replay (ms)</th></tr></thead><tbody></tbody></table>
<h2>Top differing paths</h2>
<p class="muted" id="paths-note"></p>
<table id="paths"><thead><tr><th>endpoint</th><th>comparator</th><th>path</th><th class="num">count</th><th class="num">% of endpoint</th>
<th>severity</th><th>kinds</th></tr></thead><tbody></tbody></table>
<h2>Latency: original vs replay</h2>
<table id="latency"><thead><tr><th></th><th class="num">count</th><th class="num">p50</th><th class="num">p90</th><th class="num">p95</th><th class="num">p99</th><th class="num">max</th></tr></thead><tbody></tbody></table>
<div class="legend muted">ms, log scale<span style="background:#1f77b4"></span>original<span style="background:#ff7f0e"></span>replay</div>
<div id="histogram"></div>
</main>
<script type="application/json" id="report-data">)HTML";

constexpr const char* kScript = R"HTML(</script>
<script>
(function(){
"use strict";
const $ = (s) => document.querySelector(s);
function el(tag, attrs, ...kids){
  const e = document.createElement(tag);
  for (const [k,v] of Object.entries(attrs||{})) { if (k === "text") e.textContent = v; else e.setAttribute(k, v); }
  for (const k of kids) if (k != null) e.append(k);
  return e;
}
const fmt = (v) => v == null ? "–" : (v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2));
const pct = (n, d) => d ? (100 * n / d).toFixed(d < 1000 ? 1 : 2) + "%" : "–";
const num = (v) => el("td", {class: "num", text: String(v)});

// Splits "head\r\n\r\nbody" and pretty-prints a JSON body, so a diff shows fields per line.
function pretty(text) {
  if (!text) return [];
  let cut = text.indexOf("\r\n\r\n"), sep = 4;
  if (cut < 0) { cut = text.indexOf("\n\n"); sep = 2; }
  let head = cut < 0 ? text : text.slice(0, cut), body = cut < 0 ? "" : text.slice(cut + sep);
  try { if (body.trim()) body = JSON.stringify(JSON.parse(body), null, 2); } catch (e) { /* not JSON: as is */ }
  return head.replace(/\r/g, "").split("\n").concat(body ? [""].concat(body.split("\n")) : []);
}
// Longest common subsequence of lines -> aligned rows [left, right, type].
function diffLines(a, b) {
  const n = a.length, m = b.length;
  if (n * m > 4e6) {  // too big for the table: compare line by line
    const rows = [];
    for (let i = 0; i < Math.max(n, m); i++) rows.push([a[i], b[i], a[i] === b[i] ? "same" : "chg"]);
    return rows;
  }
  const L = Array.from({length: n + 1}, () => new Uint32Array(m + 1));
  for (let i = n - 1; i >= 0; i--) for (let j = m - 1; j >= 0; j--)
    L[i][j] = a[i] === b[j] ? L[i + 1][j + 1] + 1 : Math.max(L[i + 1][j], L[i][j + 1]);
  const rows = []; let i = 0, j = 0, dels = [], adds = [];
  const pair = () => {
    for (let k = 0; k < Math.max(dels.length, adds.length); k++)
      rows.push([dels[k], adds[k], dels[k] != null && adds[k] != null ? "chg" : dels[k] != null ? "del" : "add"]);
    dels = []; adds = [];
  };
  while (i < n || j < m) {
    if (i < n && j < m && a[i] === b[j]) { pair(); rows.push([a[i], b[j], "same"]); i++; j++; }
    else if (j < m && (i >= n || L[i][j + 1] >= L[i + 1][j])) adds.push(b[j++]);
    else dels.push(a[i++]);
  }
  pair();
  return rows;
}
// A changed line with the differing middle marked.
function marked(text, other) {
  const e = el("div", {class: "chg"});
  if (text == null) { e.className = "gap"; return e; }
  if (other == null) { e.textContent = text; return e; }
  let p = 0; while (p < text.length && p < other.length && text[p] === other[p]) p++;
  let s = 0; while (s < text.length - p && s < other.length - p && text[text.length - 1 - s] === other[other.length - 1 - s]) s++;
  e.append(text.slice(0, p), el("mark", {text: text.slice(p, text.length - s)}), text.slice(text.length - s));
  return e;
}
function sideBySide(left, right, leftName, rightName) {
  const box = el("div", {class: "diff"}, el("div", {class: "hd", text: leftName}), el("div", {class: "hd", text: rightName}));
  for (const [a, b, type] of diffLines(pretty(left), pretty(right))) {
    if (type === "chg") { box.append(marked(a, b), marked(b, a)); continue; }
    const cls = type === "same" ? "" : type;
    box.append(el("div", {class: a == null ? "gap" : cls, text: a == null ? "" : a}),
               el("div", {class: b == null ? "gap" : cls, text: b == null ? "" : b}));
  }
  return box;
}

// Where the reader is: the <details> they opened and how far they scrolled, under keys that
// survive a new rendering (endpoint, comparator and path; sample index), so that the live view
// can render new data in place and put them back. Keys are properties, not attributes: the
// markup stays what it was.
function viewState() {
  const open = new Set(), scroll = new Map();
  for (const d of document.querySelectorAll("#paths details")) if (d.open && d.doppelKey) open.add(d.doppelKey);
  for (const b of document.querySelectorAll("#paths .diff")) if (b.scrollTop && b.doppelKey) scroll.set(b.doppelKey, b.scrollTop);
  return {open, scroll, x: window.scrollX, y: window.scrollY};
}
function keyed(e, key, state) {
  e.doppelKey = key;
  if (state && e.tagName === "DETAILS" && state.open.has(key)) e.open = true;
  return e;
}
function sampleBox(key, s, state) {
  const box = el("div", {class: "sample"});
  box.append(el("div", {}, el("span", {class: "tag " + (s.verdict === "match" || s.verdict === "warn" || s.verdict === "mismatch" ? s.verdict : "error"), text: s.verdict}),
    " id ", el("code", {text: s.id}), " · ", s.kind));
  if (s.original_value || s.replay_value)
    box.append(el("div", {class: "kv"}, "original: ", el("code", {text: s.original_value}), "  replay: ", el("code", {text: s.replay_value})));
  if (s.message) box.append(el("div", {class: "kv", text: s.message}));
  if (s.request) box.append(keyed(el("details", {}, el("summary", {text: "request"}), el("pre", {class: "kv", text: s.request})), key + "\u0001request", state));
  if (s.original || s.replay) box.append(keyed(sideBySide(s.original, s.replay, "original", "replay"), key + "\u0001diff", state));
  if (s.baseline) box.append(keyed(el("details", {}, el("summary", {text: "baseline vs original"}),
    keyed(sideBySide(s.original, s.baseline, "original", "baseline"), key + "\u0001baseline-diff", state)), key + "\u0001baseline", state));
  return box;
}

// Renders the report data D into the page; `state` (viewState()) is null on the first rendering.
function render(D, state) {
  document.title = D.title;
  $("#title").textContent = D.title;
  $("#subtitle").textContent = "generated " + D.generated;
  const T = D.totals;
  const errors = T.replay_error + T.missing_original + T.missing_replay;
  const cards = [];
  for (const [label, value, cls] of [["verdicts", T.total], ["match rate", pct(T.match, T.total), "match"],
      ["match", T.match, "match"], ["warn", T.warn, "warn"], ["mismatch", T.mismatch, "mismatch"],
      ["errors / missing", errors, "error"], ["noise checks", D.noise_checks, "noise"]]) {
    cards.push(el("div", {class: "card"}, el("span", {class: "muted", text: label}), el("b", {class: cls || "", text: String(value)})));
  }
  $("#cards").replaceChildren(...cards);
  $("#goals-section").hidden = !D.goals.length;
  $("#goals tbody").replaceChildren(...D.goals.map((g) => el("tr", {}, el("td", {class: "kv", text: g.condition}),
    el("td", {text: g.value == null ? "undefined (no data)" : g.value}),
    el("td", {class: "goal " + (g.missed ? "missed" : "met"), text: g.missed ? "MISSED" : "ok"}))));
  $("#endpoints tbody").replaceChildren(...D.endpoints.map((ep) => {
    const t = ep.totals, L = t.latency;
    const rate = t.total ? t.match / t.total : 0;
    const bar = el("span", {class: "barbg"}, el("span", {class: "bar", style: "width:" + (80 * rate).toFixed(0) + "px"}));
    const lat = (q) => el("td", {class: "num", text: fmt(L.original[q]) + " / " + fmt(L.replay[q])});
    return el("tr", {}, el("td", {text: ep.name}), num(t.total), num(t.match), num(t.warn), num(t.mismatch),
      num(t.replay_error), num(t.missing_original), num(t.missing_replay), el("td", {}, bar, pct(t.match, t.total)),
      lat("p50"), lat("p95"), lat("p99"));
  }));
  const epTotal = Object.fromEntries(D.endpoints.map((e) => [e.name, e.totals.total]));
  $("#paths-note").textContent = D.paths.length ? "Up to " + D.samples_per_path +
    " sample exchanges per path; open a row to compare original and replay side by side." +
    (D.untracked_paths ? " " + D.untracked_paths + " differences at paths beyond the tracking cap are not listed." : "") :
    "No differences.";
  let opened = false;
  const rows = [];
  for (const p of D.paths) {
    const sev = [];
    for (const [k, cls] of [["fail", "mismatch"], ["warn", "warn"], ["info", "noise"], ["noise", "noise"], ["other", "error"]])
      if (p[k]) sev.push(el("span", {class: "tag " + cls, text: k + " " + p[k]}), " ");
    const kinds = Object.entries(p.kinds).map(([k, n]) => k + " " + n).join(", ");
    const pathCell = el("td", {});
    const label = (p.path || p.comparator);
    if (p.samples.length) {
      const key = p.endpoint + "\u0001" + p.comparator + "\u0001" + p.path;
      const d = el("details", {}, el("summary", {}, el("code", {text: label}), " (" + p.samples.length + " sample" + (p.samples.length > 1 ? "s" : "") + ")"));
      const fill = () => { if (d.childElementCount === 1) p.samples.forEach((s, i) => d.append(sampleBox(key + "\u0001" + i, s, state))); };
      d.addEventListener("toggle", () => { if (d.open) fill(); });
      keyed(d, key, state);
      if (!state && !opened && p.samples.some((s) => s.original || s.replay)) { opened = true; d.open = true; }  // the top path starts open
      if (d.open) fill();
      pathCell.append(d);
    } else pathCell.append(el("code", {text: label}));
    rows.push(el("tr", {}, el("td", {text: p.endpoint}), el("td", {text: p.comparator}), pathCell,
      num(p.count), el("td", {class: "num", text: pct(p.count, epTotal[p.endpoint] || 0)}), el("td", {}, ...sev), el("td", {class: "muted", text: kinds})));
  }
  $("#paths tbody").replaceChildren(...rows);
  $("#latency tbody").replaceChildren(...["original", "replay"].map((side) => {
    const q = T.latency[side];
    return el("tr", {}, el("th", {text: side}), num(q.count), ...["p50", "p90", "p95", "p99", "max"].map((k) => el("td", {class: "num", text: fmt(q[k])})));
  }));
  $("#histogram").replaceChildren(histogram(D.histogram));
  if (state) {
    for (const b of document.querySelectorAll("#paths .diff")) if (state.scroll.has(b.doppelKey)) b.scrollTop = state.scroll.get(b.doppelKey);
    window.scrollTo(state.x, state.y);
  }
  document.body.setAttribute("data-total", String(T.total));
  document.body.setAttribute("data-rendered", "true");
}
// Histogram: grouped bars per log-spaced bin, inline SVG.
function histogram(H) {
  const n = H.original.length;
  const NS = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(NS, "svg");
  const W = 900, Ht = 260, pad = 40, bw = n ? (W - 2 * pad) / n : 0;
  svg.setAttribute("viewBox", "0 0 " + W + " " + Ht); svg.setAttribute("width", W); svg.setAttribute("height", Ht);
  svg.setAttribute("id", "latency-histogram");
  const mk = (tag, a) => { const e = document.createElementNS(NS, tag); for (const k in a) e.setAttribute(k, a[k]); return e; };
  const max = Math.max(1, ...H.original, ...H.replay);
  svg.append(mk("line", {x1: pad, y1: Ht - pad, x2: W - pad, y2: Ht - pad, stroke: "#999"}));
  for (let i = 0; i < n; i++) {
    for (const [k, color, off] of [["original", "#1f77b4", 0], ["replay", "#ff7f0e", 0.5]]) {
      const h = (Ht - 2 * pad) * H[k][i] / max;
      const r = mk("rect", {x: pad + i * bw + off * bw * 0.9 + bw * 0.05, y: Ht - pad - h, width: bw * 0.45, height: h, fill: color, class: "bar-" + k});
      const t = mk("title", {}); t.textContent = k + ": " + H[k][i] + " in " + fmt(H.edges_ms[i]) + "–" + fmt(H.edges_ms[i + 1]) + " ms";
      r.append(t); svg.append(r);
    }
    if (i % 4 === 0) { const t = mk("text", {x: pad + i * bw, y: Ht - pad + 14}); t.textContent = fmt(H.edges_ms[i]); svg.append(t); }
  }
  if (n) { const t = mk("text", {x: W - pad - 20, y: Ht - pad + 14}); t.textContent = fmt(H.edges_ms[n]); svg.append(t); }
  const yl = mk("text", {x: 4, y: pad}); yl.textContent = String(max); svg.append(yl);
  if (!n) { const t = mk("text", {x: W / 2 - 60, y: Ht / 2}); t.textContent = "no latency data"; svg.append(t); }
  return svg;
}
render(JSON.parse(document.getElementById("report-data").textContent), null);
window.doppelReport = {render, viewState};
})();
</script>)HTML";

// Only in the page the live view serves: every few seconds, fetch the page again and render its
// data in place (the reader keeps their place); say "live" and when it last changed, or that the
// run ended or the server is unreachable, keeping what was shown.
constexpr const char* kLiveScriptHead = R"HTML(
<script>
(function(){
"use strict";
const every = )HTML";

constexpr const char* kLiveScript = R"HTML(;
const report = window.doppelReport;
const badge = document.createElement("div");
badge.id = "live-status";
document.querySelector("header").append(badge);
let last = new Date(), updates = 0;
const clock = (t) => t.toLocaleTimeString();
function show(live, text) {
  badge.className = "live " + (live ? "on" : "off");
  badge.textContent = text;
  document.body.setAttribute("data-live", live ? "live" : "ended");
}
show(true, "\u25cf live \u00b7 updated " + clock(last));
async function refresh() {
  try {
    const response = await fetch(location.pathname + location.search, {cache: "no-store"});
    if (!response.ok) throw new Error("HTTP " + response.status);
    const page = new DOMParser().parseFromString(await response.text(), "text/html");
    const block = page.getElementById("report-data");
    if (!block) throw new Error("no report data in the answer");
    report.render(JSON.parse(block.textContent), report.viewState());
    document.getElementById("report-data").textContent = block.textContent;  // a saved page shows the latest
    last = new Date();
    document.body.setAttribute("data-live-updates", String(++updates));
    show(true, "\u25cf live \u00b7 updated " + clock(last));
  } catch (e) {
    show(false, "\u25cb run ended / unreachable \u00b7 last update " + clock(last));
  }
  setTimeout(refresh, every);
}
setTimeout(refresh, every);
})();
</script>)HTML";

constexpr const char* kEnd = "</body></html>\n";

std::string pad(std::string s, std::size_t width, bool right = false) {
  if (s.size() >= width) return s;
  return right ? std::string(width - s.size(), ' ') + s : s + std::string(width - s.size(), ' ');
}

std::string ms(std::optional<double> v) {
  if (!v) return "-";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", *v);
  return buf;
}

std::string percent(std::uint64_t n, std::uint64_t d) {
  if (!d) return "-";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f%%", 100.0 * static_cast<double>(n) / static_cast<double>(d));
  return buf;
}

}  // namespace

std::string render_html_page(const ReportConfig& config, std::string_view data, bool live) {
  std::string out = kHead;
  out += escape_markup(config.title);
  out += kStyle;
  out += data;
  out += kScript;
  if (live) {
    out += kLiveScriptHead;
    out += std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(config.live_refresh).count());
    out += kLiveScript;
  }
  out += kEnd;
  return out;
}

std::string render_html(const ReportModel& model, const ReportConfig& config, const GoalValues& goals) {
  return render_html_page(config, render_report_data(model, config, goals));
}

std::string render_summary(const ReportModel& model, const ReportConfig& config, const GoalValues& goals) {
  std::string out = "\n" + config.title + ": " + std::to_string(model.totals().total) + " verdicts\n";
  std::size_t name_width = 8;
  for (const auto& [name, ep] : model.endpoints()) name_width = std::max(name_width, std::min<std::size_t>(name.size(), 48));
  auto row = [&](const std::string& name, const ReportTotals& t) {
    std::uint64_t errors = t.replay_error + t.missing_original + t.missing_replay;
    out += "  " + pad(name.substr(0, 48), name_width) + pad(std::to_string(t.total), 9, true) +
           pad(std::to_string(t.match), 9, true) + pad(std::to_string(t.warn), 8, true) +
           pad(std::to_string(t.mismatch), 10, true) + pad(std::to_string(errors), 8, true) +
           pad(percent(t.match, t.total), 9, true) + pad(ms(t.original_latency.percentile(0.95)), 11, true) +
           pad(ms(t.replay_latency.percentile(0.95)), 11, true) + "\n";
  };
  out += "  " + pad("endpoint", name_width) + pad("total", 9, true) + pad("match", 9, true) + pad("warn", 8, true) +
         pad("mismatch", 10, true) + pad("errors", 8, true) + pad("match%", 9, true) + pad("p95 orig", 11, true) +
         pad("p95 repl", 11, true) + "\n";
  for (const auto& [name, ep] : model.endpoints()) row(name, ep.totals);
  if (model.endpoints().size() > 1) row("(all)", model.totals());
  auto top = model.top_paths(5);
  if (!top.empty()) {
    out += "  top differing paths:\n";
    for (const PathStats* p : top)
      out += "    " + pad(std::to_string(p->count), 8, true) + "  " + p->endpoint + "  " + p->comparator +
             (p->path.empty() ? "" : " " + p->path) + (p->noise == p->count && p->count ? "  (noise)" : "") + "\n";
  }
  for (const auto& [g, v] : goals) {
    out += "  fail_if " + g.text + ": ";
    out += v ? format_metric(g, *v) + (goal_holds(g, *v) ? "  MISSED\n" : "  ok\n") : "no data\n";
  }
  if (!config.html.empty()) out += "  report: " + config.html + "\n";
  if (!config.jsonl.empty()) out += "  verdicts: " + config.jsonl + "\n";
  return out;
}

}  // namespace doppel::plugins
