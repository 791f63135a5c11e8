// History (docs/history.md): the equity chart (uPlot, vendored) and the fills table, from the /api history routes.
// Loaded after dashboard.js and uses its helpers (el, $, fmtDec, money, token, state, DASH, markOverflow).
// Money stays the server's decimal strings in the table; only the chart turns equity into floats, to draw it.
"use strict";

const RANGES_MS = { "1h": 3_600_000, "24h": 86_400_000, "7d": 604_800_000, "30d": 2_592_000_000, "90d": 7_776_000_000 };
const CHART_POINTS = 500;          // buckets asked for per range (the API's default, docs/history.md)
const CHART_REFRESH_MS = 10_000;   // how often the newest bucket is re-read

const hist = { account: "total", range: "24h", from: 0, to: 0, bucketMs: 0, points: [], plot: null,
               generation: 0, accounts: [], fills: [], fillSources: [], fillsGeneration: 0,
               pageSize: 50,  // fills shown per "Load older fills"
               paged: false, fillsQueue: Promise.resolve() };

class HistoryError extends Error {}

async function api(path) {
  const tok = token();
  let response;
  try {
    response = await fetch(path, { headers: tok ? { Authorization: `Bearer ${tok}` } : {} });
  } catch (_) {
    throw new HistoryError("History is unreachable (network error); retrying.");
  }
  if (response.ok) return response.json();
  let detail = "";
  try { detail = (await response.json()).message || ""; } catch (_) { /* not JSON: the status says enough */ }
  if (response.status === 503) throw new HistoryError(`History is unavailable${detail ? `: ${detail}` : ""}.`);
  throw new HistoryError(`History request failed (HTTP ${response.status})${detail ? `: ${detail}` : ""}.`);
}

function equityPath(from, to) {
  const query = new URLSearchParams({ from, to, bucket_s: hist.bucketMs / 1000 });
  return hist.account === "total" ? `/api/portfolio/equity?${query}` : `/api/accounts/${hist.account}/equity?${query}`;
}

function showChartMessage(text) {
  $("eq-message").hidden = !text;
  $("eq-message").textContent = text || "";
  $("eq-chart").hidden = Boolean(text) && hist.points.length === 0;
}

// A whole range: buckets of a whole number of seconds, aligned so a later refresh asks for the same buckets.
async function loadEquity() {
  const generation = ++hist.generation;
  const span = RANGES_MS[hist.range];
  hist.bucketMs = Math.max(1, Math.ceil(span / CHART_POINTS / 1000)) * 1000;
  const to = Date.now() + 1;
  const from = Math.floor((to - span) / hist.bucketMs) * hist.bucketMs;
  let body;
  try {
    body = await api(equityPath(from, to));
  } catch (err) {
    if (generation !== hist.generation) return;
    hist.points = [];
    drawChart();
    showChartMessage(err.message);
    return;
  }
  if (generation !== hist.generation) return;  // a newer range or account was picked meanwhile
  Object.assign(hist, { from, to, points: body.points });
  drawChart();
  showChartMessage(body.points.length ? "" : "No equity samples in this range yet.");
}

// The newest bucket again (and any after it): replaces the last point, appends new ones, drops those out of range.
async function refreshEquity() {
  if (!hist.bucketMs || document.hidden) return;
  const generation = hist.generation;
  const last = hist.points.length ? hist.points[hist.points.length - 1].ts : hist.to - hist.bucketMs;
  const from = Math.max(hist.from, Math.floor(last / hist.bucketMs) * hist.bucketMs);
  const to = Date.now() + 1;
  let body;
  try {
    body = await api(equityPath(from, to));
  } catch (err) {
    if (generation === hist.generation) showChartMessage(err.message);
    return;
  }
  if (generation !== hist.generation) return;
  const start = Math.floor((to - RANGES_MS[hist.range]) / hist.bucketMs) * hist.bucketMs;
  hist.points = hist.points.filter((p) => p.ts < from && p.ts >= start).concat(body.points);
  hist.from = start;
  hist.to = to;
  drawChart();
  showChartMessage(hist.points.length ? "" : "No equity samples in this range yet.");
}

function chartData() {
  const xs = [], last = [], min = [], max = [];
  for (const p of hist.points) {
    xs.push(p.ts / 1000);
    last.push(Number(p.last)); min.push(Number(p.min)); max.push(Number(p.max));
  }
  return [xs, last, min, max];
}

function chartSize() {
  const width = Math.max(200, $("eq-chart").clientWidth);
  return { width, height: width < 600 ? 220 : 300 };
}

function drawChart() {
  if (hist.points.length === 0) {
    if (hist.plot) { hist.plot.destroy(); hist.plot = null; }
    return;
  }
  $("eq-chart").hidden = false;
  if (hist.plot) { hist.plot.setData(chartData()); return; }
  const axis = { stroke: "#8a96a3", grid: { stroke: "#2a3440" }, ticks: { stroke: "#2a3440" } };
  const band = { stroke: "rgba(88, 166, 255, .35)", width: 1, points: { show: false } };
  hist.plot = new uPlot({
    ...chartSize(),
    legend: { show: false },
    // The x axis is the chosen range, not just the buckets that have samples (one sample would span years).
    scales: { x: { time: true, range: () => [hist.from / 1000, hist.to / 1000] } },
    series: [{}, { label: "Equity (last)", stroke: "#58a6ff", width: 2, value: (u, v) => (v === null ? DASH : v.toFixed(2)) },
      { label: "min", ...band }, { label: "max", ...band }],
    bands: [{ series: [3, 2], fill: "rgba(88, 166, 255, .15)" }],  // the min..max of each bucket
    axes: [{ ...axis }, { ...axis, size: 70 }],
  }, chartData(), $("eq-chart"));
}

// The account picker: the total, then the accounts in configuration order (the portfolio's order).
function syncAccounts() {
  const accounts = state.portfolio ? state.portfolio.accounts.map((a) => [a.account_index, label(a)]) : [];
  const key = JSON.stringify(accounts);
  if (key === JSON.stringify(hist.accounts)) return;
  const first = hist.accounts.length === 0;
  hist.accounts = accounts;
  const select = $("eq-account");
  select.replaceChildren(el("option", { value: "total", text: "Total (all accounts)" }),
    ...accounts.map(([index, name]) => el("option", { value: String(index), text: `${name} (#${index})` })));
  select.value = hist.account;
  if (select.value !== hist.account) { hist.account = "total"; select.value = "total"; }
  if (first) queueFills(loadFills);
  else renderHistoryFills();
}

// Fill operations run one after another (one queue), so a reload never interleaves with paging.
function queueFills(operation) { hist.fillsQueue = hist.fillsQueue.then(operation, operation); }

// Fills of every account, newest first: one cursor per account, merged; "Load older fills" takes the next pageSize.
async function loadFills() {
  const generation = ++hist.fillsGeneration;
  hist.fills = [];
  hist.fillSources = hist.accounts.map(([index]) => ({ index, buffer: [], cursor: null, done: false }));
  await moreFills(generation);
}

async function fetchPage(source) {
  const query = new URLSearchParams({ limit: hist.pageSize });
  if (source.cursor) query.set("cursor", source.cursor);
  const body = await api(`/api/accounts/${source.index}/fills?${query}`);
  source.buffer.push(...body.fills.map((f) => ({ ...f, account_index: source.index })));
  source.cursor = body.next_cursor;
  source.done = !body.next_cursor;
}

const newer = (a, b) => (a.ts !== b.ts ? a.ts > b.ts : a.trade_id > b.trade_id);

async function moreFills(generation = hist.fillsGeneration) {
  $("hfills-more").disabled = true;
  try {
    for (let n = 0; n < hist.pageSize; n++) {
      // Every account that may still have older fills needs one in hand before the newest can be picked.
      await Promise.all(hist.fillSources.filter((s) => s.buffer.length === 0 && !s.done).map(fetchPage));
      if (generation !== hist.fillsGeneration) return;
      const ready = hist.fillSources.filter((s) => s.buffer.length > 0);
      if (ready.length === 0) break;
      const best = ready.reduce((a, b) => (newer(b.buffer[0], a.buffer[0]) ? b : a));
      hist.fills.push(best.buffer.shift());
    }
    $("hfills-message").hidden = true;
  } catch (err) {
    if (generation !== hist.fillsGeneration) return;
    $("hfills-message").hidden = false;
    $("hfills-message").textContent = err.message;
  }
  renderHistoryFills();
}

function fillsExhausted() { return hist.fillSources.every((s) => s.done && s.buffer.length === 0); }

function renderHistoryFills() {
  const names = new Map(hist.accounts);
  $("hfills").tBodies[0].replaceChildren(...hist.fills.map((f) => el("tr", { class: "hfill", "data-trade": String(f.trade_id),
    "data-fill-account": String(f.account_index) },
    el("td", { text: f.ts ? new Date(f.ts).toLocaleString() : DASH }),
    el("td", { text: names.get(f.account_index) || `#${f.account_index}` }),
    el("td", { text: state.symbols.get(f.market_id) || `#${f.market_id}` }),
    el("td", { class: f.side === "sell" ? "neg" : f.side === "buy" ? "pos" : "", text: f.side || DASH }),
    el("td", { class: "num", "data-value": f.size ?? "", text: fmtDec(f.size) }),
    el("td", { class: "num", "data-value": f.price ?? "", text: fmtDec(f.price) }),
    el("td", { class: "num", "data-value": f.fee ?? "", text: fmtDec(f.fee) }),
    el("td", { text: f.role || DASH }))));
  $("hfills").hidden = hist.fills.length === 0;
  $("hfills-empty").hidden = hist.fills.length > 0 || !$("hfills-message").hidden;
  $("hfills-more").hidden = hist.fills.length === 0 || fillsExhausted();
  $("hfills-more").disabled = false;
  markOverflow();
}

function pickRange(range) {
  hist.range = range;
  for (const button of document.querySelectorAll("#eq-range button")) {
    button.setAttribute("aria-pressed", String(button.dataset.range === range));
  }
  loadEquity();
}

$("eq-account").addEventListener("change", (event) => { hist.account = event.target.value; hist.points = []; drawChart(); loadEquity(); });
for (const button of document.querySelectorAll("#eq-range button")) {
  button.addEventListener("click", () => pickRange(button.dataset.range));
}
$("hfills-more").addEventListener("click", () => { hist.paged = true; queueFills(() => moreFills()); });
$("hfills-reload").addEventListener("click", () => { hist.paged = false; queueFills(loadFills); });
// The first page follows new fills by itself; once older pages are open it stays put until "Newest".
setInterval(() => { if (!hist.paged && !document.hidden && hist.accounts.length) queueFills(loadFills); }, CHART_REFRESH_MS);
window.addEventListener("resize", () => { if (hist.plot) hist.plot.setSize(chartSize()); });
setInterval(syncAccounts, 1000);
setInterval(refreshEquity, CHART_REFRESH_MS);
pickRange(hist.range);
