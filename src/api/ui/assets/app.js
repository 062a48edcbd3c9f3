// tuna dashboard: the experiment list at /, one experiment at /experiments/{name}. Plain script,
// no build step. Everything shown comes from the JSON API with the token typed in the header
// (kept in localStorage); every stored string goes into the page as text (textContent), never
// as markup. Pages poll every POLL_MS and redraw only what changed; the plots are asked with their
// ETag (a 304 while nothing changed), the curves and coordinates as deltas (`?since=`).
"use strict";

const POLL_MS = 2000;
const TOKEN_KEY = "tuna.token";
// The trial table's rows at most (the rest by sorting or filtering): a page with 10,000 rows is slow.
const TABLE_ROWS = 1000;
// The lines of a trial's log shown in its panel.
const LOG_TAIL_LINES = 40;

// ── helpers ────────────────────────────────────────────────────────────────────────────────────

// An element with attributes and children (strings become text nodes).
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "onclick" || k === "onchange" || k === "onsubmit") node.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(node.dataset, v);
    else if (v !== undefined && v !== null && v !== false) node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined) continue;
    node.appendChild(typeof child === "string" || typeof child === "number" ? document.createTextNode(String(child)) : child);
  }
  return node;
}

// A number to 6 significant digits (1.5e-9, never 0).
function fmt(v) {
  if (v === null || v === undefined) return "–";
  if (typeof v !== "number") return String(v);
  if (!Number.isFinite(v)) return String(v);
  return String(parseFloat(v.toPrecision(6)));
}

function age(start) {
  if (!start) return "–";
  const s = Math.max(0, (Date.now() - Date.parse(start)) / 1000);
  if (s < 90) return `${Math.round(s)}s`;
  if (s < 5400) return `${Math.round(s / 60)}m`;
  if (s < 172800) return `${Math.round(s / 3600)}h`;
  return `${Math.round(s / 86400)}d`;
}

function seconds(s) {
  if (s === null || s === undefined) return "–";
  return s < 120 ? `${fmt(s)} s` : `${fmt(s / 60)} min`;
}

const token = () => localStorage.getItem(TOKEN_KEY) || "";

// An API error as its sentence, with the field it is about.
class ApiError extends Error {}

// A request with the token; the answer when it is 2xx or (`conditional`) a 304, else an ApiError.
async function send(path, options, conditional) {
  const opts = Object.assign({ headers: {} }, options || {});
  if (token()) opts.headers.Authorization = `Bearer ${token()}`;
  if (opts.body !== undefined) opts.headers["Content-Type"] = "application/json";
  const response = await fetch(path, opts);
  if (conditional && response.status === 304) return response;
  if (!response.ok) {
    const kind = response.headers.get("content-type") || "";
    let message = `HTTP ${response.status}`;
    if (kind.startsWith("application/json")) {
      const body = await response.json();
      if (body.error) message = body.error.message + (body.error.field ? ` (field ${body.error.field})` : "");
    }
    throw new ApiError(message);
  }
  return response;
}

async function api(path, options) {
  const response = await send(path, options, false);
  const kind = response.headers.get("content-type") || "";
  return kind.startsWith("application/json") ? response.json() : response.text();
}

// The plot routes answer with the experiment's revision as ETag. Each is asked again with it in
// If-None-Match: while nothing changed the server answers 304 with no body (and reads no trial),
// and the answer kept here is used again, the same object, so nothing is redrawn either.
const plotAnswers = new Map();
async function plot(path) {
  const kept = plotAnswers.get(path);
  const headers = kept ? { "If-None-Match": kept.etag } : {};
  const response = await send(path, { headers, cache: "no-store" }, Boolean(kept));
  if (response.status === 304) return kept.body;
  const body = await response.json();
  const etag = response.headers.get("etag");
  if (etag) plotAnswers.set(path, { etag, body });
  return body;
}

// The learning curves and the parameters' coordinates, kept by trial index and merged from
// deltas: each poll asks `<plot>?since=<the revision last seen>` and gets only the trials changed
// since in `answer[list]` (or every trial with `full: true` when the server cannot answer from that
// revision, e.g. after its restart). The merged answer is a new object only when something arrived.
function deltaKeeper(path, list) {
  const items = new Map();
  let revision = null;
  let merged = null;
  return async () => {
    const url = path + (revision ? `?since=${enc(revision)}` : "");
    const headers = revision ? { "If-None-Match": `"${revision}"` } : {};
    const response = await send(url, { headers, cache: "no-store" }, revision !== null);
    if (response.status === 304 && merged) return merged;
    const delta = await response.json();
    if (delta.full) items.clear();
    for (const item of delta[list]) items.set(item.index, item);
    revision = delta.revision || null;
    merged = Object.assign({}, delta, { [list]: [...items.values()].sort((a, b) => a.index - b.index) });
    return merged;
  };
}

function showError(error) {
  const box = document.getElementById("error");
  if (!error) {
    box.hidden = true;
    box.textContent = "";
    return;
  }
  box.hidden = false;
  if (error instanceof ApiError) {
    box.textContent = error.message;
  } else if (error instanceof TypeError && /fetch/i.test(error.message)) {
    box.textContent = `the server could not be reached (${error.message})`;
  } else {
    box.textContent = `the page failed: ${error.message}`;
    console.error(error);
  }
}

const enc = encodeURIComponent;

// Runs `step` now and every POLL_MS after it finished; errors show in the banner.
function poll(step) {
  const run = async () => {
    try {
      await step();
      showError(null);
    } catch (e) {
      showError(e);
    }
    setTimeout(run, POLL_MS);
  };
  run();
}

// Calls `draw(value)` only when the JSON of `value` changed since the last call under `key`.
const drawn = new Map();
const drawnValues = new Map();
function changed(key, value) {
  // The very answer drawn last (a plot answered 304): unchanged, without serializing it again.
  if (drawn.has(key) && drawnValues.get(key) === value) return false;
  drawnValues.set(key, value);
  const text = JSON.stringify(value);
  if (drawn.get(key) === text) return false;
  drawn.set(key, text);
  return true;
}

// ── the header: the token ──────────────────────────────────────────────────────────────────────

function setUpToken() {
  const input = document.getElementById("token");
  const state = document.getElementById("token-state");
  const show = () => {
    state.textContent = token() ? "token set" : "no token";
  };
  input.value = token();
  show();
  document.getElementById("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    if (input.value) localStorage.setItem(TOKEN_KEY, input.value);
    else localStorage.removeItem(TOKEN_KEY);
    show();
    drawn.clear();
  });
}

// ── the experiment list ────────────────────────────────────────────────────────────────────────

function progress(e) {
  const counts = e.trials || {};
  const done = Object.entries(counts)
    .filter(([phase]) => !["pending", "running", "interrupted"].includes(phase))
    .reduce((n, [, v]) => n + v, 0);
  return `${done} / ${e.maxTrials}` + (counts.running ? ` (${counts.running} running)` : "");
}

function listPage(main) {
  document.getElementById("crumb").textContent = "experiments";
  const body = el("tbody");
  main.replaceChildren(
    el("h1", {}, "Experiments"),
    el("table", { id: "experiments" },
      el("thead", {}, el("tr", {}, ["name", "phase", "algorithm", "progress", "best objective", "age"].map((h) => el("th", {}, h)))),
      body),
  );
  poll(async () => {
    const list = await api("/api/v1/experiments");
    if (!changed("list", list) && body.childElementCount) return;
    body.replaceChildren(...list.experiments.map((e) =>
      el("tr", { dataset: { experiment: e.name } },
        el("td", {}, el("a", { href: `/experiments/${enc(e.name)}` }, e.name)),
        el("td", { class: `phase phase-${e.phase}` }, e.phase),
        el("td", {}, e.algorithm),
        el("td", {}, progress(e)),
        el("td", {}, fmt(e.bestObjective)),
        el("td", {}, age(e.startTime)))));
    if (list.experiments.length === 0) body.appendChild(el("tr", {}, el("td", { colspan: 6 }, "no experiments yet: tuna submit FILE")));
  });
}

// ── one experiment ─────────────────────────────────────────────────────────────────────────────

// Every trial, page by page (the API's cursor), as of `revision` (the first page's).
async function allTrials(name) {
  const trials = [];
  let after = "";
  let revision = null;
  for (;;) {
    const page = await api(`/api/v1/experiments/${enc(name)}/trials?limit=10000${after}`);
    if (revision === null) revision = page.revision;
    trials.push(...page.trials);
    if (page.next === undefined || page.next === null) return { trials, revision };
    after = `&after=${page.next}`;
  }
}

// The trials as of now: only those changed since the last answer, merged by index into `known`
// (a full read the first time, or when the server cannot answer from that revision).
async function trialsSince(name, known) {
  if (known && known.revision) {
    const delta = await api(`/api/v1/experiments/${enc(name)}/trials?since=${enc(known.revision)}`);
    if (delta.full === false) {
      if (delta.trials.length === 0 && delta.revision === known.revision) return known;
      const trials = known.trials.slice();
      for (const t of delta.trials) trials[t.index] = t;
      return { trials, revision: delta.revision };
    }
  }
  return allTrials(name);
}

function section(id, title, ...children) {
  return el("section", { id }, el("h2", {}, title), ...children);
}

function experimentPage(main, name) {
  document.getElementById("crumb").textContent = name;
  document.title = `tuna: ${name}`;
  const view = {
    name,
    sort: { key: "index", down: false },
    filter: "",
    selected: null,
    trials: [],
    pair: [0, 1],
  };
  const parts = {
    status: el("div", { id: "status" }),
    history: el("div", { id: "history-chart", class: "chart" }),
    parallel: el("div", { id: "parallel-chart", class: "chart" }),
    importance: el("div", { id: "importance-chart", class: "chart" }),
    slices: el("div", { id: "slice-charts", class: "chart slices" }),
    pairControls: el("div", { class: "controls" }),
    pair: el("div", { id: "pair-chart", class: "chart" }),
    intermediate: el("div", { id: "intermediate-chart", class: "chart" }),
    filter: el("select", { id: "phase-filter" }),
    table: el("table", { id: "trials" }),
    detail: el("div", { id: "trial-detail" }),
    promotions: el("div", { id: "promotions" }),
    spec: el("pre", { id: "spec" }),
  };
  parts.filter.addEventListener("change", () => {
    view.filter = parts.filter.value;
    drawTable(view, parts);
  });
  main.replaceChildren(
    el("h1", {}, name),
    parts.status,
    section("history", "Optimization history", parts.history),
    section("parallel", "Parallel coordinates", parts.parallel),
    section("importance", "Parameter importance", parts.importance),
    section("slices", "Slice plots", parts.slices),
    section("pair", "Two parameters (contour)", parts.pairControls,
      el("p", { class: "note" }, "dots: the trials; under them, the objective interpolated between them (inverse-distance weighting): a sketch of the surface, not a model"),
      parts.pair),
    section("intermediate", "Intermediate values", parts.intermediate),
    section("trial-table", "Trials", el("label", {}, "phase ", parts.filter), parts.table, parts.detail),
    section("promotion", "Promotions", parts.promotions),
    section("spec-section", "Status and spec", el("details", {}, el("summary", {}, "as the API returns it"), parts.spec)),
  );
  const base = `/api/v1/experiments/${enc(name)}`;
  const curves = deltaKeeper(`${base}/plots/intermediate`, "curves");
  const coordinates = deltaKeeper(`${base}/plots/parameters`, "trials");
  poll(async () => {
    // The experiment first (one record): while nothing runs and its status is as last seen, no
    // trial can have changed, so the trials and the plots are not read again.
    const experiment = await api(base);
    const moved = changed("experiment", experiment);
    if (moved) {
      view.promotion = experiment.spec.promotion || null;
      drawStatus(parts, experiment);
    }
    const running = ((experiment.status || {}).trials || {}).running || 0;
    if (view.complete && !moved && running === 0) {
      const promotions = await api(`${base}/promotions`);
      if (changed("promotions", promotions)) drawPromotions(view, parts, promotions);
      if (view.selected) await drawDetail(view, parts);
      return;
    }
    const reads = Promise.all([
      plot(`${base}/plots/history`),
      coordinates(),
      plot(`${base}/plots/importance`),
      curves(),
      trialsSince(name, view.trialList),
      api(`${base}/promotions`),
    ]);
    // A round that failed half way is not "seen": the next one reads everything again.
    const [history, parameters, importance, intermediate, trialList, promotions] = await reads.catch((e) => {
      drawn.delete("experiment");
      throw e;
    });
    if (changed("history", history)) Charts.history(parts.history, history, fmt);
    if (changed("parameters", parameters)) {
      view.parameters = parameters;
      Charts.parallel(parts.parallel, parameters, fmt);
      Charts.slices(parts.slices, parameters, fmt);
      drawPair(view, parts);
    }
    if (changed("importance", importance)) Charts.importance(parts.importance, importance);
    if (changed("intermediate", intermediate)) Charts.intermediate(parts.intermediate, intermediate, history.goal, fmt);
    const fresh = trialList !== view.trialList;
    view.trialList = trialList;
    if (fresh && changed("trials", trialList.trials)) {
      view.trials = trialList.trials;
      drawFilter(view, parts);
      drawTable(view, parts);
    }
    if (changed("promotions", promotions)) drawPromotions(view, parts, promotions);
    if (view.selected) await drawDetail(view, parts);
    view.complete = true;
    // When the page was first complete, for benches/dashboard_load.py (ms since navigation).
    if (window.tunaFirstDraw === undefined) window.tunaFirstDraw = performance.now();
  });
}

function drawStatus(parts, experiment) {
  const s = experiment.status || {};
  const counts = Object.entries(s.trials || {}).filter(([, n]) => n > 0).map(([phase, n]) => `${n} ${phase}`).join(", ");
  parts.status.replaceChildren(
    el("p", {},
      el("span", { class: `phase phase-${s.phase}` }, s.phase || "Pending"),
      s.reason ? ` (${s.reason})` : "",
      s.message ? `: ${s.message}` : "",
      ` · ${experiment.spec.algorithm.name} · ${counts || "no trials"} of ${experiment.spec.maxTrials}`,
      s.bestTrial ? ` · best ${s.bestTrial.name} = ${fmt(s.bestTrial.objective)}` : "",
      s.serving ? ` · serving ${s.serving.version} (${s.serving.trial})` : ""));
  parts.spec.textContent = JSON.stringify(experiment, null, 2);
}

function drawPair(view, parts) {
  const axes = view.parameters.axes;
  if (axes.length < 2) {
    parts.pairControls.replaceChildren();
    parts.pair.replaceChildren(el("p", { class: "note" }, "one parameter: see its slice plot"));
    return;
  }
  const select = (which) => {
    const s = el("select", {}, axes.map((a, i) => el("option", { value: i, selected: i === view.pair[which] }, a.name)));
    s.addEventListener("change", () => {
      view.pair[which] = Number(s.value);
      Charts.pair(parts.pair, view.parameters, view.pair[0], view.pair[1], fmt);
    });
    return s;
  };
  parts.pairControls.replaceChildren(el("label", {}, "x ", select(0)), " ", el("label", {}, "y ", select(1)));
  Charts.pair(parts.pair, view.parameters, view.pair[0], view.pair[1], fmt);
}

// ── the trial table ────────────────────────────────────────────────────────────────────────────

function duration(t) {
  if (!t.startedAt) return null;
  const end = t.finishedAt ? Date.parse(t.finishedAt) : Date.now();
  return (end - Date.parse(t.startedAt)) / 1000;
}

function paramNames(trials) {
  const names = new Set();
  for (const t of trials) for (const k of Object.keys(t.parameters || {})) names.add(k);
  return [...names].sort();
}

function drawFilter(view, parts) {
  const phases = [...new Set(view.trials.map((t) => t.phase))].sort();
  if (view.filter && !phases.includes(view.filter)) phases.push(view.filter);
  parts.filter.replaceChildren(
    el("option", { value: "" }, `every phase (${view.trials.length})`),
    ...phases.map((p) => el("option", { value: p, selected: p === view.filter }, `${p} (${view.trials.filter((t) => t.phase === p).length})`)));
}

function drawTable(view, parts) {
  const params = paramNames(view.trials);
  const columns = [
    ["index", "trial", (t) => t.index, (t) => t.name],
    ["phase", "phase", (t) => t.phase, (t) => t.phase],
    ["objective", "objective", (t) => t.objective, (t) => fmt(t.objective)],
    ...params.map((p) => [`param:${p}`, p, (t) => valueOf(t.parameters[p]), (t) => fmt(t.parameters[p])]),
    ["duration", "duration", duration, (t) => seconds(duration(t))],
    ["reason", "reason", (t) => t.reason || "", (t) => t.reason || ""],
  ];
  const { key, down } = view.sort;
  const column = columns.find((c) => c[0] === key) || columns[0];
  const rows = view.trials.filter((t) => !view.filter || t.phase === view.filter);
  rows.sort((a, b) => compare(column[2](a), column[2](b)) * (down ? -1 : 1));
  const head = el("tr", {}, columns.map(([k, label]) => el("th", {
    class: k === key ? (down ? "sorted down" : "sorted") : "",
    onclick: () => {
      view.sort = { key: k, down: k === key ? !down : false };
      drawTable(view, parts);
    },
  }, label)));
  const body = rows.slice(0, TABLE_ROWS).map((t) => el("tr", {
    dataset: { trial: t.name, phase: t.phase },
    class: t.name === view.selected ? "selected" : "",
    onclick: () => {
      view.selected = t.name;
      drawTable(view, parts);
      drawDetail(view, parts).catch(showError);
    },
  }, columns.map(([k, , , show]) => el("td", { class: k === "phase" ? `phase phase-${t.phase}` : "" }, show(t)))));
  const more = rows.length > TABLE_ROWS
    ? el("tfoot", {}, el("tr", {}, el("td", { colspan: columns.length, class: "note" },
      `${TABLE_ROWS} of ${rows.length} trials shown: sort or filter to see others`)))
    : null;
  parts.table.replaceChildren(...[el("thead", {}, head), el("tbody", {}, body), more].filter(Boolean));
}

function valueOf(v) {
  return typeof v === "number" ? v : v === undefined ? null : String(v);
}

// Numbers before text before nothing, each in its own order.
function compare(a, b) {
  const rank = (v) => (v === null || v === undefined ? 2 : typeof v === "number" ? 0 : 1);
  if (rank(a) !== rank(b)) return rank(a) - rank(b);
  if (rank(a) === 0) return a - b;
  if (rank(a) === 1) return String(a).localeCompare(String(b));
  return 0;
}

function tail(text, lines) {
  const all = text.replace(/\n$/, "").split("\n");
  return all.slice(-lines).join("\n");
}

function definitions(object) {
  const entries = Object.entries(object || {});
  if (entries.length === 0) return el("p", { class: "note" }, "none");
  return el("dl", {}, entries.map(([k, v]) => [el("dt", {}, k), el("dd", {}, fmt(v))]));
}

async function drawDetail(view, parts) {
  const base = `/api/v1/experiments/${enc(view.name)}/trials/${enc(view.selected)}`;
  const [t, stdout, stderr] = await Promise.all([
    api(base),
    api(`${base}/logs?tail=${LOG_TAIL_LINES}`),
    api(`${base}/logs?stream=stderr&tail=${LOG_TAIL_LINES}`),
  ]);
  if (!changed("detail", [t, stdout, stderr])) return;
  const promote = el("button", {
    id: "promote-trial",
    onclick: () => write(view, parts, "promote", { trial: t.name }),
  }, `Promote ${t.name}`);
  parts.detail.replaceChildren(...[
    el("h3", {}, t.name),
    el("p", {},
      el("span", { class: `phase phase-${t.phase}` }, t.phase),
      t.reason ? ` · ${t.reason}` : "",
      ` · ${seconds(t.durationSeconds)}`,
      t.gpus && t.gpus.length ? ` · GPUs ${t.gpus.join(", ")}` : "",
      ` · attempts ${t.attempts}`),
    t.message ? el("pre", { class: "message" }, t.message) : null,
    el("h4", {}, "Parameters"), definitions(t.parameters),
    el("h4", {}, "Metrics"), definitions(t.metrics),
    t.outputDir ? el("p", {}, "output: ", el("code", {}, t.outputDir)) : null,
    el("h4", {}, t.phase === "Running" ? "Log (following)" : "Log"),
    el("pre", { class: "log", id: "trial-log" }, tail(stdout, LOG_TAIL_LINES) || "(no output)"),
    stderr ? el("h4", {}, "stderr") : null,
    stderr ? el("pre", { class: "log" }, tail(stderr, LOG_TAIL_LINES)) : null,
    promote,
  ].filter(Boolean));
}

// ── promotions ─────────────────────────────────────────────────────────────────────────────────

function drawPromotions(view, parts, history) {
  const served = history.serving ? history.serving.version : null;
  const rows = history.promotions.map((p) => el("tr", { class: `v${p.version}` === served ? "served" : "", dataset: { version: `v${p.version}` } },
    el("td", {}, `v${p.version}`),
    el("td", {}, p.action),
    el("td", {}, p.trial),
    el("td", {}, fmt(p.objective)),
    el("td", {}, p.by),
    el("td", {}, p.time),
    el("td", {}, `v${p.version}` === served ? "served" : "")));
  parts.promotions.replaceChildren(
    el("p", { id: "promotion-policy" }, policy(view.promotion)),
    history.serving
      ? el("p", {}, `serving ${history.serving.version} (${history.serving.trial})`, history.serving.url ? ` at ${history.serving.url}` : "")
      : el("p", { class: "note" }, "nothing is served"),
    el("table", {},
      el("thead", {}, el("tr", {}, ["version", "action", "trial", "objective", "by", "time", ""].map((h) => el("th", {}, h)))),
      el("tbody", {}, rows)),
    el("p", { class: "controls" },
      el("button", { id: "promote-best", onclick: () => write(view, parts, "promote", {}) }, "Promote the best trial"),
      " ",
      el("button", { id: "rollback", onclick: () => write(view, parts, "rollback", {}) }, "Roll back")),
    el("p", { id: "promotion-result", class: "note" }),
  );
}

// The spec's promotion policy and gate, in words.
function policy(promotion) {
  if (!promotion) return "promotion: manual, no gate (spec.promotion is not set)";
  const gate = promotion.gate || {};
  const bounds = [gate.min !== undefined ? `at least ${fmt(gate.min)}` : null, gate.max !== undefined ? `at most ${fmt(gate.max)}` : null]
    .filter(Boolean).join(" and ");
  return `promotion: ${promotion.policy || "manual"}; gate: ${bounds ? `the objective ${bounds}` : "none"}`;
}

// A promote or rollback; the answer (or the refusal's sentence) shows under the buttons.
async function write(view, parts, action, body) {
  const result = () => document.getElementById("promotion-result");
  try {
    const answer = await api(`/api/v1/experiments/${enc(view.name)}/${action}`, { method: "POST", body: JSON.stringify(body) });
    if (result()) result().textContent = answer.message;
    showError(null);
  } catch (e) {
    if (result()) result().textContent = e.message;
    showError(e);
  }
}

// ── start ──────────────────────────────────────────────────────────────────────────────────────

document.addEventListener("DOMContentLoaded", () => {
  setUpToken();
  const main = document.getElementById("main");
  const path = location.pathname;
  const prefix = "/experiments/";
  if (path.startsWith(prefix) && path.length > prefix.length) experimentPage(main, decodeURIComponent(path.slice(prefix.length)));
  else listPage(main);
});
