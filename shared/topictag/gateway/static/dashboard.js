// The dashboard: plain DOM and SVG over the gateway's JSON API, refreshed by polling.
"use strict";

const COLORS = ["#2f6fdf", "#e0803a", "#1d8a4a", "#b3261e", "#7a4fd0", "#0f8b8d", "#c2469b", "#7d6b2f"];
const $ = (id) => document.getElementById(id);

// An API key is needed only when the gateway runs with TOPICTAG_GATEWAY_READS_NEED_KEY=true.
// Open the page once as /?key=tt_...: the key is kept in this browser (localStorage) and taken
// out of the address bar; /?key= with nothing after it forgets it.
const KEY_ITEM = "topictag.apiKey";
const storage = {
  get() { try { return localStorage.getItem(KEY_ITEM); } catch { return null; } },
  set(v) { try { if (v) localStorage.setItem(KEY_ITEM, v); else localStorage.removeItem(KEY_ITEM); } catch { /* private mode */ } },
};
let pageKey = null;  // used for this page even where localStorage is unavailable
(function keyFromAddress() {
  const url = new URL(location.href);
  if (!url.searchParams.has("key")) return;
  pageKey = url.searchParams.get("key") || null;
  storage.set(pageKey);
  url.searchParams.delete("key");
  history.replaceState(null, "", url);
})();

async function api(path) {
  const headers = { Accept: "application/json" };
  const key = pageKey || storage.get();
  if (key) headers["X-API-Key"] = key;
  const r = await fetch(path, { headers });
  if (r.status === 401 || r.status === 403) $("need-key").hidden = false;
  if (!r.ok) throw new Error(`${path}: ${r.status}`);
  $("need-key").hidden = true;
  return r.json();
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(c ?? ""));
  return node;
}

function paperItem(p) {
  const extra = p.score !== undefined ? ` · ${(p.score * 100).toFixed(0)}%` : "";
  return el("li", {},
    el("span", { class: "topic" }, p.topic || "(untagged)"),
    el("span", { class: "badge" }, p.adapter_version || ""),
    el("span", { class: "muted" }, ` ${p.arxiv_id}${extra}`),
    el("span", { class: "title", title: p.title }, p.title));
}

function showResults(title, papers) {
  $("results-title").textContent = title;
  $("results-list").replaceChildren(...papers.map(paperItem));
  if (!papers.length) $("results-list").append(el("li", { class: "muted" }, "No papers found."));
  $("results").hidden = false;
}

async function openCluster(id, label) {
  const page = await api(`/v1/papers?cluster=${id}&limit=50`);
  showResults(`Cluster: ${label}`, page.items);
}

function clusterItem(c, text) {
  return el("li", { onclick: () => openCluster(c.cluster_id ?? c.id, c.label), title: "Show its papers" }, text);
}

function drawTrends(trends) {
  const svg = $("trend-chart");
  const W = 600, H = 260, L = 34, B = 22, T = 8, R = 8;
  const max = Math.max(1, ...trends.series.flatMap((s) => s.counts));
  const n = trends.weeks.length;
  const x = (i) => L + (n <= 1 ? 0 : (i * (W - L - R)) / (n - 1));
  const y = (v) => H - B - (v * (H - B - T)) / max;
  const ns = "http://www.w3.org/2000/svg";
  const add = (tag, attrs, text) => {
    const e = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    svg.append(e);
    return e;
  };
  svg.replaceChildren();
  for (const v of [0, Math.round(max / 2), max]) {
    add("line", { x1: L, x2: W - R, y1: y(v), y2: y(v), stroke: "#e3e6ee" });
    add("text", { x: L - 4, y: y(v) + 3, "text-anchor": "end" }, v);
  }
  trends.weeks.forEach((w, i) => {
    if (i % Math.ceil(n / 6) === 0) add("text", { x: x(i), y: H - 6, "text-anchor": "middle" }, w.slice(5));
  });
  trends.series.forEach((s, k) => {
    const points = s.counts.map((v, i) => `${x(i)},${y(v)}`).join(" ");
    add("polyline", { points, fill: "none", stroke: COLORS[k % COLORS.length], "stroke-width": 2 })
      .append(Object.assign(document.createElementNS(ns, "title"), { textContent: s.label }));
  });
  $("trend-legend").replaceChildren(...trends.series.map((s, k) =>
    el("li", { onclick: () => openCluster(s.cluster_id, s.label) },
      el("i", { style: `background:${COLORS[k % COLORS.length]}` }), s.label)));
}

function fmt(v) { return v === undefined || v === null ? "" : Number(v).toFixed(1); }

function drawModels(models) {
  const rows = models.adapters.slice().reverse().map((a) => {
    const inc = a.metrics.incumbent;
    const delta = inc ? `${fmt(a.metrics.rouge1_f - inc.rouge1_f)} ROUGE-1 vs ${a.metrics.incumbent_version}` : "";
    return el("tr", {},
      el("td", {}, a.version), el("td", { class: `status-${a.status}`, title: a.reason }, a.status),
      el("td", {}, fmt(a.metrics.bleu3)), el("td", {}, fmt(a.metrics.rouge1_f)), el("td", {}, delta),
      el("td", {}, a.promoted_at ? new Date(a.promoted_at).toLocaleString() : ""));
  });
  if (!rows.length) rows.push(el("tr", {}, el("td", { colspan: 6, class: "muted" }, "No adapter yet: the base model tags every paper.")));
  $("adapters").tBodies[0].replaceChildren(...rows);
}

function drawStats(stats) {
  $("counts").textContent = `${stats.papers_tagged.toLocaleString()} papers tagged · ${stats.teacher_labels.toLocaleString()} teacher labels`;
  const agree = stats.agreement.map((a) => el("tr", {}, el("td", {}, a.adapter_version), el("td", {}, a.papers), el("td", {}, fmt(a.rouge1_f))));
  if (!agree.length) agree.push(el("tr", {}, el("td", { colspan: 3, class: "muted" }, "No sampled paper has a teacher label yet.")));
  $("agreement").tBodies[0].replaceChildren(...agree);
  $("lag").tBodies[0].replaceChildren(...stats.lag.map((l) => el("tr", {}, el("td", {}, l.group), el("td", {}, l.lag ?? "unknown"))));
  $("empty").hidden = stats.papers_tagged > 0;
}

async function refresh() {
  const jobs = [
    api("/v1/stats").then(drawStats),
    api("/v1/papers?limit=25").then((page) => $("stream").replaceChildren(...page.items.map(paperItem))),
    api("/v1/topics/trends?weeks=12&limit=6").then((t) => {
      drawTrends(t);
      $("rising").replaceChildren(...t.rising.slice(0, 8).map((r) => clusterItem(r, `${r.label} (${r.recent} recent, ×${r.growth})`)));
    }),
    api("/v1/topics/clusters?limit=10").then((c) => $("clusters").replaceChildren(...c.items.map((k) => clusterItem(k, `${k.label} (${k.papers})`)))),
    api("/v1/models").then(drawModels),
  ];
  for (const r of await Promise.allSettled(jobs)) if (r.status === "rejected") console.warn(r.reason);
}

$("search-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const q = $("q").value.trim();
  if (!q) return;
  const res = await api(`/v1/search?q=${encodeURIComponent(q)}&limit=20`);
  showResults(`Search: ${q}`, res.items);
});
$("results-close").addEventListener("click", () => { $("results").hidden = true; });

refresh();
setInterval(refresh, 5000);
