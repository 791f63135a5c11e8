// The trader's dashboard, fed by /ws (docs/websocket.md): account patches, status, and the `portfolio` push (the
// same body as GET /api/portfolio, computed by the server with exact decimals). This page never does money
// arithmetic: it only formats the server's decimal strings. All data goes through textContent, never innerHTML.
"use strict";

const state = { accounts: new Map(), received: new Map(), status: null, statusAt: 0, lastSeq: null,
                portfolio: null, portfolioAt: 0, shown: new Map(), symbols: new Map(),
                ttlMs: 5000, retry: 500, socket: null, open: false };
const $ = (id) => document.getElementById(id);
const DASH = "—";  // unknown is shown as this, never as 0
// Risk thresholds: margin usage (% of equity) and distance from the mark to the liquidation price (%).
const MARGIN_WARN = 50, MARGIN_BAD = 80, LIQ_WARN = 20, LIQ_BAD = 10;

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null) continue;
    if (key === "text") node.textContent = value; else node.setAttribute(key, value);
  }
  for (const child of children) if (child !== null && child !== undefined && child !== "") node.append(child);
  return node;
}

function fmtAge(ms) {
  if (ms === null || ms === undefined) return "never";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 120000) return `${(ms / 1000).toFixed(1)} s`;
  return `${Math.round(ms / 60000)} min`;
}

// A decimal string rounded (half up) to `places` with thousands separators, exactly (BigInt, never float).
// `places` undefined keeps the string's own decimals (a market's precision). "-0" never appears.
function fmtDec(value, places) {
  if (value === null || value === undefined || value === "") return DASH;
  const m = /^(-?)(\d+)(?:\.(\d+))?$/.exec(String(value));
  if (!m) return DASH;
  const [, neg, int, frac = ""] = m;
  const p = places === undefined || places === null ? frac.length : places;
  const scaled = BigInt(int + frac.padEnd(p + 1, "0").slice(0, p + 1));
  const rounded = (scaled + 5n) / 10n;
  const digits = rounded.toString().padStart(p + 1, "0");
  const whole = digits.slice(0, digits.length - p).replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  return (neg && rounded !== 0n ? "-" : "") + whole + (p > 0 ? "." + digits.slice(-p) : "");
}
const sign = (value) => (value === null || value === undefined ? 0 : /^-/.test(value) && /[1-9]/.test(value) ? -1
  : /[1-9]/.test(value) ? 1 : 0);
function money(value) { return fmtDec(value, 2); }
function pct(value) { return value === null || value === undefined ? DASH : `${fmtDec(value, 2)}%`; }
function marginRisk(value) {
  if (value === null || value === undefined) return "";
  const n = Number(value);
  return n >= MARGIN_BAD ? "bad" : n >= MARGIN_WARN ? "warn" : "ok";
}
function liqRisk(value) {
  if (value === null || value === undefined) return "";
  const n = Number(value);
  return n <= LIQ_BAD ? "bad" : n <= LIQ_WARN ? "warn" : "ok";
}
function worstRisk(...levels) {
  return levels.includes("bad") ? "bad" : levels.includes("warn") ? "warn" : levels.includes("ok") ? "ok" : "";
}
function badge(text, kind) { return el("span", { class: `badge ${kind}`, text }); }

// A figure: its exact value in data-value (what tests compare with the API), its text formatted; it flashes
// when its value changed since the last render of the same key.
function fig(key, value, text, extra = "", tag = "strong") {
  const node = el(tag, { class: `fig ${extra}`.trim(), "data-key": key, "data-value": value ?? "", text });
  const before = state.shown.get(key);
  if (before && before !== (value ?? "")) node.classList.add("flash");  // a change, not the first value
  state.shown.set(key, value ?? "");
  return node;
}
function setFig(id, value, text, extra = "") {
  const node = $(id);
  const before = node.dataset.value;
  node.className = `fig ${extra}`.trim();
  node.dataset.value = value ?? "";
  node.textContent = text;
  if (before && before !== (value ?? "")) {
    node.classList.remove("flash"); void node.offsetWidth; node.classList.add("flash");
  }
}
const pnlClass = (value) => (sign(value) > 0 ? "pos" : sign(value) < 0 ? "neg" : "");

// Token: ?token= once (then removed from the address bar), else localStorage, else ask.
function token() {
  const params = new URLSearchParams(location.search);
  if (params.has("token")) {
    localStorage.setItem("lb-token", params.get("token"));
    params.delete("token");
    history.replaceState(null, "", location.pathname + (params.toString() ? `?${params}` : ""));
  }
  return localStorage.getItem("lb-token");
}

function connect() {
  const params = new URLSearchParams({ updates: "patch", portfolio: "1" });
  const tok = token();
  if (tok) params.set("token", tok);
  if (state.lastSeq !== null) params.set("since", state.lastSeq);
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const socket = new WebSocket(`${scheme}://${location.host}/ws?${params}`);
  state.socket = socket;
  setConn("connecting", "warn");
  socket.onopen = () => { state.retry = 500; state.open = true; setConn("live", "ok"); renderAll(); };
  socket.onmessage = (event) => handle(JSON.parse(event.data));
  socket.onclose = (event) => {
    state.open = false;
    setConn("disconnected", "bad");
    renderAll();
    if (event.code === 4001) { $("token-form").hidden = false; return; }
    setTimeout(connect, state.retry);
    state.retry = Math.min(state.retry * 2, 10000);
  };
}

function setConn(text, kind) { const c = $("conn"); c.textContent = text; c.className = `badge ${kind}`; }

// Patch updates (docs/websocket.md): RFC 6902 JSON Patch, of which the server uses add, remove and replace.
function applyPatch(doc, ops) {
  const out = structuredClone(doc);
  for (const op of ops) {
    const keys = op.path.split("/").slice(1).map((k) => k.replaceAll("~1", "/").replaceAll("~0", "~"));
    if (keys.length === 0) return structuredClone(op.value);  // the whole document replaced
    const last = keys.pop();
    const parent = keys.reduce((node, key) => node[key], out);
    if (Array.isArray(parent)) {
      const i = last === "-" ? parent.length : Number(last);
      if (op.op === "add") parent.splice(i, 0, op.value);
      else if (op.op === "remove") parent.splice(i, 1);
      else parent[i] = op.value;
    } else if (op.op === "remove") {
      delete parent[last];
    } else {
      parent[last] = op.value;
    }
  }
  return out;
}

// A confirm (protocol 2): the data is unchanged, only its freshness moved (docs/websocket.md, "Confirmations").
const CONFIRM_FIELDS = ["seq", "prev_seq", "version", "written_at", "as_of", "age_ms", "stale"];
function applyConfirm(held, msg) {
  const out = structuredClone(held);
  for (const key of CONFIRM_FIELDS) out[key] = msg[key];
  for (const [name, [asOf, source, stale]] of Object.entries(msg.sections || {})) {
    Object.assign(out.sections[name], { as_of: asOf, source, stale });
  }
  for (const section of Object.values(out.sections || {})) {
    if (section.as_of !== null && out.age_ms !== null) section.age_ms = Math.max(0, out.as_of + out.age_ms - section.as_of);
  }
  return out;
}

function handle(msg) {
  if (msg.type === "confirm") {
    const held = state.accounts.get(msg.account_index);
    if (!held || held.seq !== msg.prev_seq) {  // never expected: start over from fresh snapshots
      state.lastSeq = null;
      state.socket.close();
      return;
    }
    msg.account = applyConfirm(held, msg);
  }
  if (msg.type === "update" && msg.patch) {
    const held = state.accounts.get(msg.account_index);
    if (!held || held.seq !== msg.prev_seq) {  // never expected: start over from fresh snapshots
      state.lastSeq = null;
      state.socket.close();
      return;
    }
    msg.account = applyPatch(held, msg.patch);
  }
  if (msg.type === "snapshot" || msg.type === "update" || msg.type === "confirm") {
    state.accounts.set(msg.account_index, msg.account);
    state.received.set(msg.account_index, Date.now());
    state.lastSeq = Math.max(state.lastSeq || 0, msg.seq);
    learnSymbols(msg.account);
    renderAccount(msg.account_index);
  } else if (msg.type === "portfolio") {
    state.portfolio = msg.portfolio; state.portfolioAt = Date.now();
    renderAll();
  } else if (msg.type === "status") {
    state.status = msg.status; state.statusAt = Date.now();
    state.ttlMs = (msg.status.cache_ttl_s || 5) * 1000;
    renderAll();
  } else if (msg.type === "hello") {
    $("token-form").hidden = true;
    const gone = [...state.accounts.keys()].filter((i) => !msg.accounts.includes(i));
    gone.forEach((i) => { state.accounts.delete(i); document.querySelector(`[data-account="${i}"]`)?.remove(); });
  } else if (msg.type === "heartbeat") {
    state.lastSeq = Math.max(state.lastSeq || 0, msg.seq);
  }
}

// Market symbols for fills (a trade carries only its market id): from positions and orders seen.
function learnSymbols(account) {
  const sections = account.sections || {};
  for (const p of (sections.positions && sections.positions.data) || []) if (p.symbol) state.symbols.set(p.market_id, p.symbol);
  for (const o of (sections.orders && sections.orders.data) || []) if (o.market_symbol) state.symbols.set(o.market_index, o.market_symbol);
}

// Ages move on between messages: age at encode time plus time since we received it.
function ageNow(index, ageMs) {
  return ageMs === null || ageMs === undefined ? null : ageMs + (Date.now() - state.received.get(index));
}

// Whether anything the page shows can be trusted now: the socket is open, the store answers, the worker is up.
function feedLive() {
  const s = state.status;
  return state.open && s !== null && s.store.reachable !== false && s.worker.up === true;
}

function renderAll() {
  if (state.status) renderStatus();
  renderStatusLine();
  renderPortfolio();
  for (const index of state.accounts.keys()) renderAccount(index);
  renderFills();
}

// One line that never contradicts itself: the worst fact wins.
function renderStatusLine() {
  const s = state.status;
  const line = $("statusline");
  let kind = "ok", text;
  const staleNames = state.portfolio ? state.portfolio.accounts.filter((a) => accountStale(a)).map(label) : [];
  if (!state.open) { kind = "bad"; text = "Disconnected from the broadcaster: reconnecting; figures are stale"; }
  else if (!s) { kind = "warn"; text = "Connected; waiting for status"; }
  else if (s.store.reachable === false) { kind = "bad"; text = "Store unreachable: figures are stale"; }
  else if (!s.worker.up) {
    kind = "bad";
    const age = s.worker.heartbeat_age_ms === null ? "never" : `${fmtAge(s.worker.heartbeat_age_ms + (Date.now() - state.statusAt))} ago`;
    text = `Worker down (last heartbeat ${age}): every figure is stale`;
  } else if (staleNames.length) { kind = "warn"; text = `Stale: ${staleNames.join(", ")}`; }
  else if (s.mode !== "ws") { kind = "warn"; text = `Live, upstream ${s.mode || "unknown"} (not the WebSocket)`; }
  else text = "Live: upstream WebSocket, all accounts fresh";
  line.className = `statusline ${kind}`;
  $("status-text").textContent = text;
}

function label(a) { return a.name ? a.name : `#${a.account_index}`; }
function accountStale(a) {
  if (!feedLive()) return true;
  const age = a.age_ms === null ? null : a.age_ms + (Date.now() - state.portfolioAt);
  return a.stale || age === null || age > state.ttlMs;
}

function renderPortfolio() {
  const p = state.portfolio;
  const t = p ? p.total : {};
  const stale = !p || !feedLive() || t.stale || t.age_ms === null || t.age_ms + (Date.now() - state.portfolioAt) > state.ttlMs;
  const st = stale ? "stale" : "";
  setFig("t-equity", t.equity, money(t.equity), st);
  setFig("t-upnl", t.unrealized_pnl, money(t.unrealized_pnl), `${st} ${pnlClass(t.unrealized_pnl)}`);
  setFig("t-rpnl", t.realized_pnl, money(t.realized_pnl), `${st} ${pnlClass(t.realized_pnl)}`);
  setFig("t-margin", t.margin_usage_pct, pct(t.margin_usage_pct), `${st} risk-${marginRisk(t.margin_usage_pct)}-text`);
  setFig("t-liq", t.worst_liquidation_distance_pct, pct(t.worst_liquidation_distance_pct),
    `${st} risk-${liqRisk(t.worst_liquidation_distance_pct)}-text`);
  setFig("t-available", t.available_balance, money(t.available_balance), st);
  setFig("t-leverage", t.leverage, t.leverage ? `${fmtDec(t.leverage, 2)}×` : DASH, st);
  setFig("t-volume", t.volume_24h, money(t.volume_24h), st);
  const risk = p ? worstRisk(marginRisk(t.margin_usage_pct), liqRisk(t.worst_liquidation_distance_pct)) : "";
  $("portfolio").className = `portfolio${risk ? ` risk-${risk}` : ""}${stale ? " is-stale" : ""}`;
  let fresh;
  if (!p) fresh = "Waiting for data…";
  else if (stale) {
    const names = p.accounts.filter(accountStale).map(label);
    fresh = `Stale: ${names.length ? names.join(", ") : "all accounts"}; oldest input ${fmtAge(t.age_ms === null ? null : t.age_ms + (Date.now() - state.portfolioAt))} old`;
  } else fresh = `${t.accounts} accounts, ${t.position_count ?? DASH} positions, ${t.active_order_count ?? DASH} active orders; oldest input ${fmtAge(t.age_ms + (Date.now() - state.portfolioAt))} old`;
  $("t-fresh").textContent = fresh;
}

function renderStatus() {
  const s = state.status;
  const ageSinceStatus = Date.now() - state.statusAt;
  const down = !s.worker.up || s.store.reachable === false;
  $("banner-sim").hidden = !(s.upstream && s.upstream.simulator);
  $("banner-store").hidden = s.store.reachable !== false;
  $("banner-worker").hidden = s.worker.up || s.store.reachable === false;
  // A dead worker's last record says nothing about now: its mode and sockets are shown as unknown, never green.
  $("mode").replaceChildren(down ? badge("down", "bad") : badge(s.mode || "unknown", s.mode === "ws" ? "ok" : "warn"));
  $("heartbeat").textContent = s.worker.heartbeat_age_ms === null ? "never seen"
    : `${down ? "down; " : "up; "}heartbeat ${fmtAge(s.worker.heartbeat_age_ms + ageSinceStatus)} ago (pid ${s.worker.pid ?? "?"})`
      + roleText(s);
  const iv = s.intervals || {};
  const fmtIv = (x) => (x ? `${x.configured} s configured, ${x.effective} s effective` : DASH);
  $("poll").textContent = fmtIv(iv.poll) + (iv.stretched ? `; stretched: ${iv.reason || "budget"}` : "");
  $("orders-interval").textContent = fmtIv(iv.orders);
  $("clients").textContent = String(s.clients.websocket);
  $("egresses").tBodies[0].replaceChildren(...(s.egresses || []).map((e) => egressRow(e, down)));
  const errors = (s.errors || []).slice(-10).reverse();
  $("errors-section").hidden = errors.length === 0;
  $("errors").replaceChildren(...errors.map((e) =>
    el("li", { text: `${new Date(e.at).toLocaleTimeString()} ${e.where}: ${e.message}` })));
  markOverflow();
}

// The worker's role (active/standby) and epoch, when the status record carries them.
function roleText(s) {
  const role = s.worker.role ?? s.role;
  const epoch = s.worker.epoch ?? s.epoch;
  if (!role) return "";
  return `; ${role}${epoch !== undefined && epoch !== null ? ` (epoch ${epoch})` : ""}`;
}

function egressRow(e, down) {
  const ws = e.ws || {};
  const wsKind = down ? "unknown" : ws.state === "connected" ? "ok" : ws.state === "backoff" ? "bad" : "warn";
  const budget = e.budget || {};
  return el("tr", { "data-egress": e.id },
    el("td", { text: e.id }), el("td", { text: e.proxy || "direct" }),
    el("td", { text: (e.accounts || []).join(", ") }),
    el("td", {}, badge(down ? `unknown (was ${ws.state || DASH})` : ws.state || DASH, wsKind)),
    el("td", { class: "num", text: String(ws.reconnects ?? 0) }),
    el("td", { class: "num", text: `${budget.used_last_minute ?? 0} / ${budget.per_minute ?? "∞"} per min` }),
    el("td", { class: "num", text: String(e.requests ?? 0) }),
    el("td", { class: `num ${e.rate_limited ? "neg" : ""}`, text: String(e.rate_limited ?? 0) }),
    el("td", { class: "num", text: String(e.errors ?? 0) }));
}

function renderAccount(index) {
  const account = state.accounts.get(index);
  const figures = state.portfolio ? state.portfolio.accounts.find((a) => a.account_index === index) : null;
  if (!account && !figures) return;
  let card = document.querySelector(`[data-account="${index}"]`);
  if (!card) {
    document.querySelector("#accounts > p.muted")?.remove();
    card = el("article", { class: "account", "data-account": String(index) });
    placeCard(card, index);
  }
  const a = figures || { account_index: index, name: account && account.name, group: account && account.group,
                         positions: [], stale: true, age_ms: null };
  const age = account ? ageNow(index, account.age_ms) : null;
  const stale = accountStale(a) || !account || account.stale || age === null || age > state.ttlMs;
  card.classList.toggle("is-stale", stale);
  const k = (name) => `${index}:${name}`;
  const st = stale ? "stale" : "";
  const worker = state.status && state.status.accounts ? (state.status.accounts[String(index)] || {}) : {};
  const risk = worstRisk(marginRisk(a.margin_usage_pct), liqRisk(a.worst_liquidation_distance_pct));
  const sections = (account && account.sections) || {};
  card.replaceChildren(
    el("div", { class: "account-head" },
      el("h3", { class: "name", text: label(a) }),
      el("span", { class: "ident", text: `#${index}${a.group !== null && a.group !== undefined ? ` · group ${a.group}` : ""}` }),
      stale ? badge("stale", "stale") : badge("fresh", "ok"),
      el("span", { class: "muted age", text: age === null ? "never updated" : `updated ${fmtAge(age)} ago` }),
      worker.egress ? badge(`via ${worker.egress}`, "") : null,
      account && account.public_only ? badge("public only", "warn") : null),
    el("div", { class: "numbers" },
      box("Equity", fig(k("equity"), a.equity, money(a.equity), st)),
      box("Unrealized PnL", fig(k("upnl"), a.unrealized_pnl, money(a.unrealized_pnl), `${st} ${pnlClass(a.unrealized_pnl)}`), "upnl"),
      box("Realized PnL", fig(k("rpnl"), a.realized_pnl, money(a.realized_pnl), `${st} ${pnlClass(a.realized_pnl)}`)),
      box("Collateral", fig(k("collateral"), a.collateral, money(a.collateral), st), "collateral"),
      box("Available", fig(k("available"), a.available_balance, money(a.available_balance), st))),
    el("div", { class: `risk-row risk-${risk || "none"}` },
      el("span", {}, "Margin usage ", fig(k("margin"), a.margin_usage_pct, pct(a.margin_usage_pct), `${st} risk-${marginRisk(a.margin_usage_pct)}-text`, "b")),
      el("span", {}, "Leverage ", fig(k("leverage"), a.leverage, a.leverage ? `${fmtDec(a.leverage, 2)}×` : DASH, st, "b")),
      el("span", {}, "Worst liq. distance ", fig(k("liq"), a.worst_liquidation_distance_pct, pct(a.worst_liquidation_distance_pct),
        `${st} risk-${liqRisk(a.worst_liquidation_distance_pct)}-text`, "b")),
      el("span", {}, "Volume 24 h / 7 d / 30 d ", fig(k("volume"), a.volume_24h,
        [a.volume_24h, a.volume_7d, a.volume_30d].map((v) => (v === null || v === undefined ? DASH : fmtDec(v, 0))).join(" / "), st, "b"))),
    sectionTitle("Positions", sections.positions, index),
    // Money and risk first, so a phone shows them before its table scrolls.
    table(["Market", "Side", "Size", "uPnL", "Liq. dist.", "Mark", "Entry", "Liq. price", "Notional"],
      [false, false, true, true, true, true, true, true, true], (a.positions || []).map((p) => positionRow(p, index, st))),
    sectionTitle("Active orders", account && account.public_only ? null : sections.orders, index),
    account && account.public_only ? el("p", { class: "muted", text: "Orders need the account's API key." })
      : table(["Market", "Side", "Price", "Remaining", "Age"], [false, false, true, true, true],
        ((sections.orders && sections.orders.data) || []).map((o) =>
          el("tr", { class: "order" }, el("td", { text: o.market_symbol || String(o.market_index) }),
            el("td", { class: o.is_ask ? "neg" : "pos", text: o.is_ask ? "sell" : "buy" }),
            el("td", { class: `num fig ${st}`, text: fmtDec(o.price) }),
            el("td", { class: `num fig ${st}`, text: fmtDec(o.remaining_base_amount) }),
            el("td", { class: "num", text: fmtAge(Date.now() - Number(o.created_at || o.timestamp)) })))));
  markOverflow();
}

// Cards keep configuration order: the order of the portfolio (and of the tracked list), not of arrival.
function placeCard(card, index) {
  const order = state.portfolio ? state.portfolio.accounts.map((a) => a.account_index) : [...state.accounts.keys()];
  const pos = order.indexOf(index);
  const after = [...$("accounts").children].find((c) => order.indexOf(Number(c.dataset.account)) > pos);
  $("accounts").insertBefore(card, after || null);
}

function positionRow(p, index, st) {
  const k = (name) => `${index}:${p.market_id}:${name}`;
  const px = p.price_decimals;
  return el("tr", { class: "position", "data-market": String(p.market_id) },
    el("td", { text: p.symbol || String(p.market_id) }),
    el("td", { class: p.side === "short" ? "neg" : "pos", text: p.side }),
    fig(k("size"), p.size, `${p.side === "short" ? "-" : ""}${fmtDec(p.size, p.size_decimals)}`, `num size ${st}`, "td"),
    fig(k("upnl"), p.unrealized_pnl, money(p.unrealized_pnl), `num ${st} ${pnlClass(p.unrealized_pnl)}`, "td"),
    fig(k("liqdist"), p.liquidation_distance_pct, pct(p.liquidation_distance_pct),
      `num liq-distance ${st} risk-${liqRisk(p.liquidation_distance_pct)}-text`, "td"),
    fig(k("mark"), p.mark_price, fmtDec(p.mark_price, px), `num ${st}`, "td"),
    el("td", { class: `num fig ${st}`, text: fmtDec(p.entry_price, px) }),
    el("td", { class: `num fig ${st}`, text: fmtDec(p.liquidation_price, px) }),
    fig(k("notional"), p.notional, money(p.notional), `num ${st}`, "td"));
}

function box(title, value, cls = "") { return el("div", { class: cls }, el("span", { text: title }), value); }

function sectionTitle(title, section, index) {
  const h = el("h4", { text: `${title} ` });
  if (section) {
    const age = ageNow(index, section.age_ms);
    const stale = !feedLive() || section.stale || age === null || age > state.ttlMs;
    h.append(stale ? badge(section.error ? `stale: ${section.error}` : "stale", "stale")
      : badge(`${section.source || "?"} · ${fmtAge(age)}`, ""));
  }
  return h;
}

function table(headers, numeric, rows) {
  if (rows.length === 0) return el("p", { class: "muted", text: "none" });
  return el("div", {}, el("div", { class: "scroll" }, el("table", {},
    el("thead", {}, el("tr", {}, ...headers.map((h, i) => el("th", { class: numeric[i] ? "num" : null, text: h })))),
    el("tbody", {}, ...rows))), el("p", { class: "scroll-hint", text: "⇆ more columns: swipe sideways" }));
}

function renderFills() {
  const fills = state.portfolio ? state.portfolio.recent_fills || [] : [];
  const st = feedLive() ? "" : "stale";
  $("fills-empty").hidden = fills.length > 0;
  $("fills").hidden = fills.length === 0;
  $("fills").tBodies[0].replaceChildren(...fills.map((f) => el("tr", { class: "fill", "data-trade": f.trade_id, "data-fill-account": String(f.account_index) },
    el("td", { text: f.timestamp ? new Date(f.timestamp).toLocaleTimeString() : DASH }),
    el("td", { text: f.name || `#${f.account_index}` }),
    el("td", { text: state.symbols.get(f.market_id) || `#${f.market_id}` }),
    el("td", { class: f.side === "sell" ? "neg" : f.side === "buy" ? "pos" : "", text: f.side || DASH }),
    el("td", { class: `num fig ${st}`, text: fmtDec(f.size) }),
    el("td", { class: `num fig ${st}`, text: fmtDec(f.price) }),
    el("td", { class: `num fig ${st}`, text: money(f.usd_amount) }))));
  markOverflow();
}

// Tables wider than the screen say so (a hint under them) instead of being cut off silently.
function markOverflow() {
  for (const box of document.querySelectorAll(".scroll")) {
    box.classList.toggle("overflows", box.scrollWidth > box.clientWidth + 1);
  }
}
for (const box of document.querySelectorAll(".scroll[data-hint]")) {
  box.after(el("p", { class: "scroll-hint", text: "⇆ more columns: swipe sideways" }));
}

$("token-form").addEventListener("submit", (event) => {
  event.preventDefault();
  localStorage.setItem("lb-token", $("token-input").value);
  $("token-input").value = "";
  $("token-form").hidden = true;
  connect();
});
// The operator's detail sits below the money and starts folded on a phone.
$("operator").open = window.matchMedia("(min-width: 701px)").matches;
window.addEventListener("resize", markOverflow);
setInterval(renderAll, 1000);
connect();
