// The dashboard's behaviour: read /regime/today and /ready, follow /regime/stream,
// redraw the history figure over a chosen span, and run backtests through POST /backtest.
"use strict";

const policy = document.body.dataset.policy;
const filterSides = JSON.parse(document.getElementById("filter-sides").textContent);
let shown = null; // the answer on screen (a /regime/today body)

const $ = (id) => document.getElementById(id);
const pct = (x, digits = 1) => (x === null || x === undefined ? "n/a" : `${(x * 100).toFixed(digits)}%`);
const num = (x, digits = 3) => (x === null || x === undefined ? "n/a" : Number(x).toFixed(digits));

function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
  for (const child of children) node.append(child);
  return node;
}

async function getJson(url) {
  const response = await fetch(url, { headers: { Accept: "application/json" } });
  const body = await response.json().catch(() => ({}));
  return { ok: response.ok, status: response.status, body, headers: response.headers };
}

function showBanner(id, text) {
  const banner = $(id);
  banner.textContent = text || "";
  banner.hidden = !text;
}

// How far a filter's value is from flipping its state, in the filter's own units.
function distanceToFlip(name, filter) {
  if (filter.state === "unavailable" || filter.value === null) return "no input";
  const gap = Math.abs(filter.value - filter.threshold);
  const firesBelow = filterSides[name] === "below";
  if (filter.state === "firing") {
    return `clears after a ${firesBelow ? "rise" : "fall"} of ${num(gap)}`;
  }
  return `fires after a ${firesBelow ? "fall" : "rise"} of ${num(gap)}`;
}

// The classifier's regime: 0 calm, 1 distressed (a name when the body carries one).
function modelRegime(regime) {
  if (regime === null || regime === undefined) return "n/a";
  return typeof regime === "number" ? (["calm", "distressed"][regime] ?? String(regime)) : regime;
}

function renderToday(today) {
  shown = today;
  const regime = $("regime");
  regime.textContent = today.regime;
  regime.className = `regime ${today.regime}`;
  $("exposure").textContent = pct(today.exposure, 0);
  $("policy").textContent = today.mapping ? `${today.policy} (${today.mapping})` : today.policy;
  $("as-of").textContent = today.as_of;
  $("expected").textContent = today.stale ? `(expected ${today.expected_as_of})` : "";
  $("publication").textContent = `#${today.publication_id}, ${today.published_at}`;

  const rows = $("filters").querySelector("tbody");
  rows.replaceChildren();
  const filters = (today.rules && today.rules.filters) || {};
  for (const [name, filter] of Object.entries(filters)) {
    rows.append(
      el("tr", { "data-filter": name },
        el("td", {}, `${name} `, el("span", { class: "muted" }, filter.detail || "")),
        el("td", { class: `state-${filter.state}` }, filter.state),
        el("td", {}, num(filter.value)),
        el("td", {}, `${filterSides[name] === "below" ? "<" : ">"} ${num(filter.threshold, 2)}`),
        el("td", { class: "distance" }, distanceToFlip(name, filter)),
      ),
    );
  }

  const model = $("model");
  model.replaceChildren();
  if (today.model && today.model.available) {
    const p = today.model.p_distressed;
    const bar = el("div", { class: "bar" }, el("div", { style: `width: ${(p || 0) * 100}%` }));
    model.append(
      el("div", {}, "model ", el("strong", {}, modelRegime(today.model.regime)),
        ` (version ${today.model.version}): P(distressed) `, el("strong", { id: "p-distressed" }, pct(p))),
      bar,
    );
  } else {
    model.append(el("div", { class: "muted" }, `model unavailable: ${(today.model && today.model.reason) || "unknown"}`));
  }
  showBanner("banner-stale", today.stale
    ? `Stale: the latest answer is as of ${today.as_of}, the last closed session is ${today.expected_as_of}.`
    : "");
}

async function refreshToday() {
  const today = await getJson(`/regime/today?policy=${encodeURIComponent(policy)}`);
  if (!today.ok) {
    showBanner("banner-error", `No answer: ${today.body.detail || today.status}`);
    return;
  }
  showBanner("banner-error", "");
  // Never go back to an older publication than the one on screen (the stream may be ahead).
  if (!shown || today.body.publication_id >= shown.publication_id) renderToday(today.body);
}

async function refreshReadiness() {
  const ready = await getJson("/ready");
  const failing = Object.entries(ready.body.checks || {}).filter(([, check]) => !check.ok);
  const text = failing.map(([name, check]) => `${name}: ${check.detail}`).join("; ");
  if (ready.body.status === "not_ready") showBanner("banner-degraded", `Not ready. ${text}`);
  else if (ready.body.status === "degraded") showBanner("banner-degraded", `Degraded. ${text}`);
  else showBanner("banner-degraded", "");
}

function followStream() {
  const live = $("live");
  const stream = new EventSource(`/regime/stream?policy=${encodeURIComponent(policy)}`);
  stream.onopen = () => { live.textContent = "live"; live.className = "live on"; };
  stream.onerror = () => { live.textContent = "reconnecting…"; live.className = "live off"; };
  stream.addEventListener("regime", (event) => {
    const published = JSON.parse(event.data);
    if (shown && published.publication_id <= shown.publication_id) return;
    // The event carries the published body; stale and expected_as_of come with the next read.
    renderToday({ ...(shown || {}), ...published });
    setTimeout(() => { refreshToday(); refreshReadiness(); }, 1500);
  });
}

function showHistory(event) {
  if (event) event.preventDefault();
  const form = new FormData($("history-form"));
  const query = new URLSearchParams();
  for (const key of ["start", "end"]) if (form.get(key)) query.set(key, form.get(key));
  const suffix = query.toString() ? `?${query}` : "";
  $("history-figure").src = `/dashboard/history.png${suffix}`;
  $("history-svg").href = `/dashboard/history.svg${suffix}`;
}

const STRATEGIES = {
  buy_and_hold: { kind: "buy_and_hold" },
  rules: { kind: "rules" },
  trend: { kind: "single_filter", filter: "trend" },
  volatility: { kind: "single_filter", filter: "volatility" },
  credit: { kind: "single_filter", filter: "credit" },
  model: { kind: "model", mapping: "filter" },
};

function resultTable(result) {
  const header = ["strategy", "ann. return", "volatility", "Sharpe", "max DD", "avg. exposure", "trades"];
  const body = result.strategies.map((s) => el("tr", {},
    el("td", {}, s.name),
    el("td", {}, pct(s.metrics.annualised_return)),
    el("td", {}, pct(s.metrics.annualised_volatility)),
    el("td", {}, num(s.metrics.sharpe, 2)),
    el("td", {}, pct(s.metrics.max_drawdown)),
    el("td", {}, pct(s.metrics.time_invested.average_exposure, 0)),
    el("td", {}, String(s.metrics.trades)),
  ));
  return el("table", { id: "backtest-metrics" },
    el("thead", {}, el("tr", {}, ...header.map((h) => el("th", {}, h)))),
    el("tbody", {}, ...body));
}

async function runBacktest(event) {
  event.preventDefault();
  const form = new FormData($("backtest-form"));
  const request = {
    strategies: form.getAll("strategy").map((key) => STRATEGIES[key]),
    cost_bps: Number(form.get("cost_bps") || 0),
    equity_sampling: "none",
  };
  for (const key of ["start", "end"]) if (form.get(key)) request[key] = form.get(key);
  const status = $("backtest-status");
  const output = $("backtest-result");
  output.replaceChildren();
  status.textContent = "running…";
  const response = await fetch("/backtest", {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "application/json" },
    body: JSON.stringify(request),
  });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    status.textContent = `refused (${response.status}): ${body.detail || response.statusText}`;
    return;
  }
  const id = response.headers.get("X-Backtest-Id");
  const period = body.period;
  status.textContent = `${period.start} .. ${period.end}, ${period.days} days`;
  output.append(resultTable(body));
  if (id) {
    output.append(
      el("p", {}, el("a", { id: "backtest-report", href: `/backtest/${id}/report` }, "tear sheet"),
        " · ", el("a", { href: `/backtest/${id}` }, "stored run (JSON)")),
      el("img", { id: "backtest-equity", alt: "equity", src: `/backtest/${id}/figures/equity.png` }),
    );
  }
}

$("history-form").addEventListener("submit", showHistory);
$("backtest-form").addEventListener("submit", runBacktest);
refreshToday().then(followStream);
refreshReadiness();
setInterval(refreshReadiness, 60_000);
