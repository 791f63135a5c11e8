// The alerts panel (docs/alerts.md#api-and-dashboard), after dashboard.js (its $, el, badge, token, DASH,
// markOverflow). GET /api/alerts every 10 s; the panel stays hidden when no rules are configured.
// Destinations are shown by name only: the API never serves their URLs.
const ALERT_STATE = { delivered: "ok", failed: "bad", pending: "warn", quiet: "" };
function alertTime(ms) { return ms === null || ms === undefined ? DASH : new Date(ms).toLocaleTimeString(); }
async function refreshAlerts() {
  const tok = token();
  let body;
  try {
    const response = await fetch("/api/alerts", { headers: tok ? { Authorization: `Bearer ${tok}` } : {} });
    if (!response.ok) return;
    body = await response.json();
  } catch (_) { return; }
  $("alerts-section").hidden = !body.enabled;
  if (!body.enabled) return;
  $("alerts-summary").textContent = `${body.rules.length} rule(s), ${body.destinations.length} destination(s); ` +
    `${body.pending ?? DASH} pending` + (body.outbox === "ok" ? "" : " (outbox not ready)");
  const rules = body.rules.map((r) => el("tr", { "data-rule": r.name },
    el("td", { text: r.name }), el("td", { text: r.when }),
    el("td", { class: "state" }, r.state ? badge(r.state, ALERT_STATE[r.state] ?? "") : DASH),
    el("td", { class: "fired", "data-value": r.last_fired ?? "", text: alertTime(r.last_fired) }),
    el("td", { text: r.to.join(", ") })));
  $("alert-rules").querySelector("tbody").replaceChildren(...rules);
  const rows = body.deliveries.slice(0, 20).map((d) => el("tr", { "data-delivery": d.id, "data-event": d.event_id },
    el("td", { "data-value": d.created_ms, text: alertTime(d.created_ms) }), el("td", { text: d.rule }),
    el("td", { text: d.account_index < 0 ? "service" : `#${d.account_index}` }), el("td", { text: d.destination }),
    el("td", { class: "status" }, badge(d.status, ALERT_STATE[d.status] ?? "")),
    el("td", { class: "num", text: String(d.attempts) }), el("td", { class: "num", text: d.last_code ?? DASH }),
    el("td", { text: d.last_error ?? "" })));
  $("alerts").querySelector("tbody").replaceChildren(...rows);
  markOverflow();
}
refreshAlerts();
setInterval(refreshAlerts, 10000);
