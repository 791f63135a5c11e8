// Live dashboard fed by /ws (docs/websocket.md). All data goes through textContent: never innerHTML with data.
"use strict";

const state = { accounts: new Map(), received: new Map(), status: null, statusAt: 0, lastSeq: null,
                ttlMs: 5000, retry: 500, socket: null };
const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "text") node.textContent = value; else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

function fmtAge(ms) {
  if (ms === null || ms === undefined) return "never";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 120000) return `${(ms / 1000).toFixed(1)} s`;
  return `${Math.round(ms / 60000)} min`;
}
function fmtNum(value, digits = 2) {
  const n = Number(value);
  return Number.isFinite(n) ? n.toLocaleString(undefined, { maximumFractionDigits: digits }) : "–";
}
function signed(value) {
  const n = Number(value);
  return el("span", { class: n > 0 ? "pos" : n < 0 ? "neg" : "", text: fmtNum(value) });
}
function badge(text, kind) { return el("span", { class: `badge ${kind}`, text }); }

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
  const params = new URLSearchParams({ updates: "patch" });
  const tok = token();
  if (tok) params.set("token", tok);
  if (state.lastSeq !== null) params.set("since", state.lastSeq);
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const socket = new WebSocket(`${scheme}://${location.host}/ws?${params}`);
  state.socket = socket;
  setConn("connecting", "warn");
  socket.onopen = () => { state.retry = 500; setConn("live", "ok"); };
  socket.onmessage = (event) => handle(JSON.parse(event.data));
  socket.onclose = (event) => {
    setConn("disconnected", "bad");
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

function handle(msg) {
  if (msg.type === "update" && msg.patch) {
    const held = state.accounts.get(msg.account_index);
    if (!held || held.seq !== msg.prev_seq) {  // never expected: start over from fresh snapshots
      state.lastSeq = null;
      state.socket.close();
      return;
    }
    msg.account = applyPatch(held, msg.patch);
  }
  if (msg.type === "snapshot" || msg.type === "update") {
    state.accounts.set(msg.account_index, msg.account);
    state.received.set(msg.account_index, Date.now());
    state.lastSeq = Math.max(state.lastSeq || 0, msg.seq);
    renderAccount(msg.account_index);
  } else if (msg.type === "status") {
    state.status = msg.status; state.statusAt = Date.now();
    state.ttlMs = (msg.status.cache_ttl_s || 5) * 1000;
    renderStatus();
  } else if (msg.type === "hello") {
    $("token-form").hidden = true;
    const gone = [...state.accounts.keys()].filter((i) => !msg.accounts.includes(i));
    gone.forEach((i) => { state.accounts.delete(i); document.querySelector(`[data-account="${i}"]`)?.remove(); });
  } else if (msg.type === "heartbeat") {
    state.lastSeq = Math.max(state.lastSeq || 0, msg.seq);
  }
}

// Ages move on between messages: age at encode time plus time since we received it.
function ageNow(index, ageMs) {
  return ageMs === null || ageMs === undefined ? null : ageMs + (Date.now() - state.received.get(index));
}

function renderStatus() {
  const s = state.status;
  const ageSinceStatus = Date.now() - state.statusAt;
  $("banner-sim").hidden = !(s.upstream && s.upstream.simulator);
  $("banner-store").hidden = s.store.reachable !== false;
  $("banner-worker").hidden = s.worker.up || s.store.reachable === false;
  $("mode").replaceChildren(badge(s.mode || "unknown", s.mode === "ws" ? "ok" : "warn"));
  $("heartbeat").textContent = s.worker.heartbeat_age_ms === null ? "never"
    : `${fmtAge(s.worker.heartbeat_age_ms + ageSinceStatus)} ago (pid ${s.worker.pid ?? "?"})`;
  const iv = s.intervals || {};
  const fmtIv = (x) => (x ? `${x.configured} s configured, ${x.effective} s effective` : "–");
  $("poll").textContent = fmtIv(iv.poll) + (iv.stretched ? ` — stretched: ${iv.reason || "budget"}` : "");
  $("orders-interval").textContent = fmtIv(iv.orders);
  $("clients").textContent = String(s.clients.websocket);
  $("egresses").tBodies[0].replaceChildren(...(s.egresses || []).map(egressRow));
  const errors = (s.errors || []).slice(-10).reverse();
  $("errors-section").hidden = errors.length === 0;
  $("errors").replaceChildren(...errors.map((e) =>
    el("li", { text: `${new Date(e.at).toLocaleTimeString()} ${e.where}: ${e.message}` })));
  for (const index of state.accounts.keys()) renderAccount(index);
}

function egressRow(e) {
  const ws = e.ws || {};
  const wsKind = ws.state === "connected" ? "ok" : ws.state === "backoff" ? "bad" : "warn";
  const budget = e.budget || {};
  return el("tr", { "data-egress": e.id },
    el("td", { text: e.id }), el("td", { text: e.proxy || "direct" }),
    el("td", { text: (e.accounts || []).join(", ") }), el("td", {}, badge(ws.state || "–", wsKind)),
    el("td", { text: String(ws.reconnects ?? 0) }),
    el("td", { text: `${budget.used_last_minute ?? 0} / ${budget.per_minute ?? "∞"} per min` }),
    el("td", { text: String(e.requests ?? 0) }), el("td", { class: e.rate_limited ? "neg" : "", text: String(e.rate_limited ?? 0) }),
    el("td", { text: String(e.errors ?? 0) }));
}

function renderAccount(index) {
  const account = state.accounts.get(index);
  let card = document.querySelector(`[data-account="${index}"]`);
  if (!card) {
    document.querySelector("#accounts > p.muted")?.remove();
    card = el("article", { class: "account", "data-account": String(index) });
    $("accounts").append(card);
  }
  const age = ageNow(index, account.age_ms);
  const stale = account.stale || age === null || age > state.ttlMs || (state.status && !state.status.worker.up);
  card.classList.toggle("is-stale", stale);
  const sections = account.sections || {};
  const summary = (sections.summary && sections.summary.data) || {};
  const positions = ((sections.positions && sections.positions.data) || []).filter((p) => Number(p.position) !== 0);
  const worker = state.status && state.status.accounts ? (state.status.accounts[String(index)] || {}) : {};
  const upnl = positions.reduce((sum, p) => sum + Number(p.unrealized_pnl || 0), 0);
  const rpnl = positions.reduce((sum, p) => sum + Number(p.realized_pnl || 0), 0);
  card.replaceChildren(
    el("div", { class: "account-head" }, el("h3", { text: `Account ${index}` }),
      stale ? badge("stale", "stale") : badge("fresh", "ok"),
      el("span", { class: "muted age", text: `updated ${fmtAge(age)} ago` }),
      worker.egress ? badge(`via ${worker.egress}`, "") : "",
      account.public_only ? badge("public only", "warn") : ""),
    el("div", { class: "numbers" },
      figure("Collateral", fmtNum(summary.collateral), "collateral"),
      figure("Available", fmtNum(summary.available_balance)),
      figure("Total value", fmtNum(summary.total_asset_value)),
      figure("Unrealized PnL", signed(upnl), "upnl"), figure("Realized PnL", signed(rpnl))),
    sectionTitle("Positions", sections.positions, index),
    table(["Market", "Size", "Entry", "Value", "uPnL", "Liq."], positions.map((p) =>
      el("tr", { class: "position", "data-market": String(p.market_id) },
        el("td", { text: p.symbol || String(p.market_id) }),
        el("td", { class: "size", text: `${p.sign < 0 ? "-" : ""}${p.position}` }),
        el("td", { text: p.avg_entry_price }), el("td", { text: fmtNum(p.position_value) }),
        el("td", {}, signed(p.unrealized_pnl)), el("td", { text: p.liquidation_price })))),
    sectionTitle("Active orders", account.public_only ? null : sections.orders, index),
    account.public_only ? el("p", { class: "muted", text: "Orders need the account's API key." })
      : table(["Market", "Side", "Price", "Remaining", "Age"], ((sections.orders && sections.orders.data) || []).map((o) =>
        el("tr", { class: "order" }, el("td", { text: o.market_symbol || String(o.market_index) }),
          el("td", { class: o.is_ask ? "neg" : "pos", text: o.is_ask ? "sell" : "buy" }),
          el("td", { text: o.price }), el("td", { text: o.remaining_base_amount }),
          el("td", { text: fmtAge(Date.now() - Number(o.created_at || o.timestamp)) })))));
}

function figure(label, value, cls = "") {
  return el("div", { class: cls }, el("span", { text: label }),
    typeof value === "string" ? el("strong", { text: value }) : el("strong", {}, value));
}

function sectionTitle(title, section, index) {
  const h = el("h4", { text: `${title} ` });
  if (section) {
    const age = ageNow(index, section.age_ms);
    const stale = section.stale || age === null || age > state.ttlMs;
    h.append(stale ? badge(section.error ? `stale: ${section.error}` : "stale", "stale")
      : badge(`${section.source || "?"} · ${fmtAge(age)}`, ""));
  }
  return h;
}

function table(headers, rows) {
  if (rows.length === 0) return el("p", { class: "muted", text: "none" });
  return el("div", { class: "scroll" }, el("table", {},
    el("thead", {}, el("tr", {}, ...headers.map((h) => el("th", { text: h })))), el("tbody", {}, ...rows)));
}

$("token-form").addEventListener("submit", (event) => {
  event.preventDefault();
  localStorage.setItem("lb-token", $("token-input").value);
  $("token-input").value = "";
  $("token-form").hidden = true;
  connect();
});
setInterval(() => { if (state.status) renderStatus(); }, 1000);
connect();
