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

// What the page shows: a market and one of its rule sets (GET /markets). The default
// market's own rule set is answered in the service's policy shape; any other rule set
// by name, in the rule-set shape (its filters at the top level, their sides in them).
const selection = { markets: [], market: null, ruleSet: null };

function chosenMarket() {
  return selection.markets.find((m) => m.id === selection.market) || null;
}

// The query naming the selection on every regime route (empty: the service's default).
function selectionQuery() {
  const market = chosenMarket();
  if (!market) return new URLSearchParams();
  const query = new URLSearchParams({ market: market.id });
  if (selection.ruleSet && selection.ruleSet !== market.rule_set) query.set("rule_set", selection.ruleSet);
  return query;
}

// The ledger policy of the selection's publications: what /regime/stream follows.
function streamPolicy() {
  const market = chosenMarket();
  if (!market || (market.default && selection.ruleSet === market.rule_set)) return policy;
  return `rule_set:${selection.ruleSet}`;
}

const withQuery = (path, query) => (query.toString() ? `${path}?${query}` : path);

// "2026-12-04 17:35:11 CET (16:35:11 UTC)": a moment to the second, local and UTC.
function formatMoment(iso) {
  const moment = new Date(iso);
  if (Number.isNaN(moment.getTime())) return iso;
  const two = (n) => String(n).padStart(2, "0");
  const local = `${moment.getFullYear()}-${two(moment.getMonth() + 1)}-${two(moment.getDate())} `
    + `${two(moment.getHours())}:${two(moment.getMinutes())}:${two(moment.getSeconds())}`;
  const zone = new Intl.DateTimeFormat("en", { timeZoneName: "short" })
    .formatToParts(moment).find((part) => part.type === "timeZoneName");
  const utc = moment.toISOString().slice(11, 19);
  return `${local} ${zone ? zone.value : ""} (${utc} UTC)`;
}

// Which side of its threshold a filter fires on: a rule set's answer says so in the
// filter, the service's policy answer leaves it to the page (the filter definitions).
const firesBelow = (name, filter) => (filter.fires || filterSides[name]) === "below";

// How far a filter's value is from flipping its state, in the filter's own units.
function distanceToFlip(name, filter) {
  if (filter.state === "unavailable" || filter.value === null) return "no input";
  const gap = Math.abs(filter.value - filter.threshold);
  const below = firesBelow(name, filter);
  if (filter.state === "firing") {
    return `clears after a ${below ? "rise" : "fall"} of ${num(gap)}`;
  }
  return `fires after a ${below ? "fall" : "rise"} of ${num(gap)}`;
}

// The classifier's regime: 0 calm, 1 distressed (a name when the body carries one).
function modelRegime(regime) {
  if (regime === null || regime === undefined) return "n/a";
  return typeof regime === "number" ? (["calm", "distressed"][regime] ?? String(regime)) : regime;
}

function ruleSetName(today) {
  if (today.rule_set && typeof today.rule_set === "object") return today.rule_set.name;
  return (today.rules && today.rules.rule_set) || today.rule_set || "n/a";
}

function renderToday(today) {
  shown = today;
  const regime = $("regime");
  regime.textContent = today.regime;
  regime.className = `regime ${today.regime}`;
  $("exposure").textContent = pct(today.exposure, 0);
  $("market").textContent = today.market || "n/a";
  $("rule-set").textContent = ruleSetName(today);
  const served = today.policy ? (today.mapping ? `${today.policy} (${today.mapping})` : today.policy) : "rule set";
  $("policy").textContent = served;
  $("as-of").textContent = today.as_of;
  $("expected").textContent = today.stale ? `(expected ${today.expected_as_of})` : "";
  const publication = $("publication");
  publication.textContent = `#${today.publication_id}, ${formatMoment(today.published_at)}`;
  publication.title = today.published_at;

  const rows = $("filters").querySelector("tbody");
  rows.replaceChildren();
  const filters = (today.rules && today.rules.filters) || today.filters || {};
  for (const [name, filter] of Object.entries(filters)) {
    rows.append(
      el("tr", { "data-filter": name, title: filter.detail || name },
        el("td", {}, `${name} `, el("span", { class: "muted" }, filter.detail || "")),
        el("td", { class: `state-${filter.state}` }, filter.state),
        el("td", {}, num(filter.value)),
        el("td", {}, `${firesBelow(name, filter) ? "<" : ">"} ${num(filter.threshold, 2)}`),
        el("td", { class: "distance" }, distanceToFlip(name, filter)),
      ),
    );
  }

  const model = $("model");
  model.replaceChildren();
  if (!today.model) {
    model.append(el("div", { class: "muted" }, "model: not part of a rule set's answer"));
  } else if (today.model.available) {
    const p = today.model.p_distressed;
    const bar = el("div", { class: "bar" }, el("div", { style: `width: ${(p || 0) * 100}%` }));
    model.append(
      el("div", {}, "model ", el("strong", {}, modelRegime(today.model.regime)),
        ` (version ${today.model.version}): P(distressed) `, el("strong", { id: "p-distressed" }, pct(p))),
      bar,
    );
  } else {
    model.append(el("div", { class: "muted" }, `model unavailable: ${today.model.reason || "unknown"}`));
  }
  showBanner("banner-stale", today.stale
    ? `Stale: the latest answer is as of ${today.as_of}, the last closed session is ${today.expected_as_of}.`
    : "");
}

async function refreshToday() {
  const asked = streamPolicy();
  const query = selectionQuery();
  if (!chosenMarket()) query.set("policy", policy);
  const today = await getJson(withQuery("/regime/today", query));
  if (asked !== streamPolicy()) return; // the selection changed meanwhile
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

let stream = null;

// Follows the selection's publications; each new one redraws the card, the history
// (to the new day when it was drawn to the latest) and the statistics.
function followStream() {
  if (stream) stream.close();
  const live = $("live");
  const followed = streamPolicy();
  stream = new EventSource(`/regime/stream?policy=${encodeURIComponent(followed)}`);
  stream.onopen = () => { live.textContent = "live"; live.className = "live on"; };
  stream.onerror = () => { live.textContent = "reconnecting…"; live.className = "live off"; };
  stream.addEventListener("regime", (event) => {
    const published = JSON.parse(event.data);
    if (followed !== streamPolicy()) return;
    if (shown && published.publication_id <= shown.publication_id) return;
    const before = shown;
    // The event carries the published body; stale and expected_as_of come with the next read.
    renderToday({ ...(shown || {}), ...published });
    if (before && before.as_of !== published.as_of) {
      const form = $("history-form");
      const toLatest = !form.end.value || form.end.value === before.as_of;
      drawHistory(form.start.value, toLatest ? "" : form.end.value);
      refreshStats();
    }
    setTimeout(() => { refreshToday(); refreshReadiness(); }, 1500);
  });
}

let historyDrawn = null; // the object URL on screen
let historyTicket = 0; // the latest draw asked for; slower earlier answers are dropped

// Draws the history of the selection over start..end (blank: the route's default) and
// fills the date inputs with the span actually drawn (the route's X-History-* headers).
async function drawHistory(start, end) {
  const query = selectionQuery();
  if (start) query.set("start", start);
  if (end) query.set("end", end);
  const status = $("history-status");
  status.textContent = "drawing…";
  const address = withQuery("/dashboard/history.png", query);
  const ticket = ++historyTicket;
  const response = await fetch(address);
  const blob = response.ok ? await response.blob() : null;
  if (ticket !== historyTicket) return; // a later draw (another selection or span) won
  if (!response.ok) {
    const body = await response.json().catch(() => ({}));
    status.textContent = `no figure (${response.status}): ${body.detail || response.statusText}`;
    $("history-figure").hidden = true; // never another selection's figure under this refusal
    return;
  }
  const figure = $("history-figure");
  if (historyDrawn) URL.revokeObjectURL(historyDrawn);
  historyDrawn = URL.createObjectURL(blob);
  const form = $("history-form");
  form.start.value = response.headers.get("X-History-Start") || "";
  form.end.value = response.headers.get("X-History-End") || "";
  figure.dataset.src = address;
  figure.dataset.start = form.start.value;
  figure.dataset.end = form.end.value;
  figure.src = historyDrawn;
  figure.hidden = false;
  const drawn = new URLSearchParams(query);
  drawn.set("start", form.start.value);
  drawn.set("end", form.end.value);
  $("history-svg").href = withQuery("/dashboard/history.svg", drawn);
  status.textContent = "";
}

function showHistory(event) {
  event.preventDefault();
  const form = $("history-form");
  drawHistory(form.start.value, form.end.value);
}

const REGIMES = ["risk-on", "caution", "risk-off"];

function renderStats(stats) {
  const spell = stats.current_spell;
  $("stats-summary").textContent = `${stats.market} (${stats.symbol}), ${stats.start} .. ${stats.end}, `
    + `${stats.days} days` + (spell ? `; current spell: ${spell.regime} since ${spell.since}, ${spell.days} days` : "");
  const regimes = $("stats-regimes");
  regimes.tHead.replaceChildren(el("tr", {}, ...["regime", "days", "spells", "mean", "median", "longest",
    "return", "vol", "max DD"].map((h) => el("th", {}, h))));
  regimes.tBodies[0].replaceChildren(...REGIMES.map((name) => {
    const r = stats.regimes[name];
    const days = (x) => (x === null || x === undefined ? "n/a" : Number(x).toFixed(0));
    return el("tr", { "data-regime": name },
      el("td", {}, name), el("td", {}, `${r.days} (${pct(r.share_of_days, 0)})`), el("td", {}, String(r.spells)),
      el("td", {}, days(r.mean_days)), el("td", {}, days(r.median_days)), el("td", {}, days(r.longest_days)),
      el("td", {}, pct(r.market.annualised_return)), el("td", {}, pct(r.market.annualised_volatility)),
      el("td", {}, pct(r.market.max_drawdown)));
  }));
  const transitions = $("stats-transitions");
  transitions.tHead.replaceChildren(el("tr", {}, el("th", {}, "from \\ to"), ...REGIMES.map((h) => el("th", {}, h))));
  transitions.tBodies[0].replaceChildren(...REGIMES.map((from) => el("tr", { "data-from": from },
    el("td", {}, from),
    ...REGIMES.map((to) => el("td", { title: `${stats.transitions[from].count[to]} days` },
      pct(stats.transitions[from].probability[to]))))));
}

async function refreshStats() {
  const asked = streamPolicy();
  const stats = await getJson(withQuery("/regimes/stats", selectionQuery()));
  if (asked !== streamPolicy()) return;
  if (!stats.ok) {
    $("stats-summary").textContent = `no statistics (${stats.status}): ${stats.body.detail || ""}`;
    $("stats-regimes").tBodies[0].replaceChildren();
    $("stats-transitions").tBodies[0].replaceChildren();
    return;
  }
  renderStats(stats.body);
}

function fillRuleSets() {
  const market = chosenMarket();
  const select = $("rule-set-select");
  select.replaceChildren(...(market ? market.rule_sets : []).map((item) =>
    el("option", { value: item.name }, `${item.name} (${item.origin})`)));
  selection.ruleSet = market ? market.rule_set : null;
  select.value = selection.ruleSet || "";
}

// Everything on the page follows the selection: a change reads it all again.
// body[data-ready] marks the selection fully drawn: the page keeps its event stream
// open, so a headless screenshot waits for this, never for the network to go idle.
function showSelection() {
  shown = null;
  delete document.body.dataset.ready;
  const form = $("history-form");
  form.start.value = "";
  form.end.value = "";
  const asked = streamPolicy();
  Promise.allSettled([refreshToday().then(followStream), drawHistory("", ""), refreshStats()])
    .then(() => { if (asked === streamPolicy()) document.body.dataset.ready = "true"; });
}

async function loadMarkets() {
  const markets = await getJson("/markets");
  if (markets.ok && Array.isArray(markets.body)) selection.markets = markets.body;
  const select = $("market-select");
  select.replaceChildren(...selection.markets.map((m) =>
    el("option", { value: m.id }, m.id === m.symbol ? m.id : `${m.id} (${m.symbol})`)));
  const fallback = selection.markets.find((m) => m.default) || selection.markets[0];
  selection.market = fallback ? fallback.id : null;
  select.value = selection.market || "";
  fillRuleSets();
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
  if (selection.market) request.market = selection.market;
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
$("market-select").addEventListener("change", (event) => {
  selection.market = event.target.value;
  fillRuleSets();
  showSelection();
});
$("rule-set-select").addEventListener("change", (event) => {
  selection.ruleSet = event.target.value;
  showSelection();
});
loadMarkets().then(showSelection);
refreshReadiness();
setInterval(refreshReadiness, 60_000);
