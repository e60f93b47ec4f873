// populace's live dashboard. The tables come first, from two small requests; Plotly.js
// (its basic bundle, served by this server) loads after them and draws the charts. Each
// poll asks only for what is newer than what the page holds. Every string from a store
// goes into the page as text (textContent), and into a chart escaped (esc).
"use strict";

const S = {
  runs: [], run: 0, poll: 2, summary: null, members: new Map(), series: new Map(),
  exploits: [], lastResult: 0, lastEvent: 0, updated: null, points: 0, budget: 20000,
  selected: null, bestLineage: null, lineage: null, plotly: null, polls: 0, busy: false,
  lastLineage: 0, lastCurves: 0, frontSteps: [],
};
const COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
  "#17becf", "#bcbd22", "#7f7f7f"];
const KINDS = ["exploit", "explore", "wait", "dropped", "timeout", "retry", "failed", "recover",
  "refused", "evaluation", "stopped", "succeeded"];
const $ = (id) => document.getElementById(id);

function esc(text) {  // for Plotly's texts, which read a little HTML (and these entities)
  return String(text).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}
function num(x) {
  if (x === null || x === undefined) return "–";
  if (typeof x !== "number") return String(x);
  if (Number.isInteger(x)) return String(x);
  return Math.abs(x) >= 1e4 || (Math.abs(x) < 1e-3 && x !== 0) ? x.toExponential(3)
    : String(Number(x.toPrecision(4)));
}
function hp(h) {
  if (!h) return "–";
  return Object.keys(h).map((k) => `${k}=${num(h[k])}`).join(", ");
}
function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}
function row(cells, cls) {
  const tr = el("tr", null, cls);
  for (const c of cells) {
    if (c instanceof Node) { const td = el("td"); td.appendChild(c); tr.appendChild(td); }
    else tr.appendChild(el("td", c === null || c === undefined ? "–" : c,
      typeof c === "number" ? "num" : null));
  }
  return tr;
}
async function get(path) {
  const r = await fetch(path, {headers: {Accept: "application/json"}});
  const body = await r.json();
  if (!r.ok) throw new Error(body.error || r.statusText);
  return body;
}
function fail(e) {
  const box = $("error");
  box.textContent = String(e && e.message ? e.message : e);
  box.hidden = false;
}
function better(a, b) {  // whether score a beats b in the run's mode
  if (a === null || a === undefined) return false;
  if (b === null || b === undefined) return true;
  return S.summary && S.summary.mode === "min" ? a < b : a > b;
}

// ---- the runs table and the population table: the first page ----------------------

function renderRuns() {
  const body = $("runs-table").tBodies[0];
  body.replaceChildren();
  for (const r of S.runs) {
    const bar = el("progress");
    bar.max = 1; bar.value = r.progress || 0;
    const prog = el("span");
    prog.append(bar, ` ${Math.round(100 * (r.progress || 0))}%`);
    const settings = el("details");
    settings.append(el("summary", "settings"), el("pre", JSON.stringify(r.settings || {}, null, 1)));
    const status = r.status ? Object.entries(r.status).map(([k, n]) => `${n} ${k}`).join(", ")
      : "";
    const best = r.best === null || r.best === undefined ? (r.note || "–")
      : `member ${r.best}: ${num(r.best_score)}`;
    const name = el("span", r.label || r.store);
    name.title = r.store;
    const tr = row([r.index, name, r.state, prog, status, best,
      r.exploit ? `${r.exploit} / ${r.explore}` : "–", r.executor || "–", settings],
    r.index === S.run ? "selected" : null);
    tr.dataset.run = r.index;
    if (r.state === "error" || r.state === "waiting") tr.title = r.note || "";
    tr.addEventListener("click", (ev) => {
      if (ev.target.closest("details")) return;
      location.hash = `run=${r.index}`;
    });
    body.appendChild(tr);
  }
}

function renderMembers() {
  const s = S.summary || {};
  const names = s.hparams || [];
  const head = $("members-table").tHead;
  head.replaceChildren();
  const cols = ["member", "status", "step", s.score ? `score (${s.score})` : "score",
    "generation", "parent", ...names];
  if (s.objectives) cols.push(...Object.keys(s.objectives));
  if (s.fire) cols.push("sub-population", "role");
  cols.push("error");
  const hr = el("tr");
  for (const c of cols) hr.appendChild(el("th", c));
  head.appendChild(hr);
  const body = $("members-table").tBodies[0];
  const rows = [];
  for (const m of [...S.members.values()].sort((a, b) => a.id - b.id)) {
    const cells = [m.id, el("span", m.status, `status-${m.status}`), m.step,
      m.score === null ? "–" : num(m.score), m.generation, m.parent === null ? "–" : m.parent,
      ...names.map((n) => num(m.hparams[n]))];
    if (s.objectives) cells.push(...Object.keys(s.objectives).map((_, i) =>
      num(m.objectives ? m.objectives[i] : null)));
    if (s.fire) cells.push(m.sub, m.role);
    const error = el("span", m.error || "");
    if (m.traceback) error.title = m.traceback;
    cells.push(error);
    const tr = row(cells, (m.status === "failed" ? "failed" : "") +
      (m.id === S.selected ? " selected" : ""));
    tr.dataset.member = m.id;
    tr.addEventListener("click", () => selectMember(m.id));
    rows.push(tr);
  }
  body.replaceChildren(...rows);
  const failed = [...S.members.values()].filter((m) => m.status === "failed").length;
  const notes = [];
  if (s.state === "waiting" || s.state === "error") notes.push(s.note);
  else if (!S.members.size) notes.push("no members yet");
  if (failed) notes.push(`${failed} member(s) failed: their error is in the last column`);
  if (s.state && s.state !== "waiting" && s.state !== "error" && s.best === null)
    notes.push("no member has a score yet");
  $("population-note").textContent = notes.join("; ");
  $("run-name").textContent = s.store ? `of ${s.store}` : "";
  const select = $("lineage-member");
  if (select.options.length !== S.members.size) {
    select.replaceChildren(...[...S.members.keys()].sort((a, b) => a - b).map((id) => {
      const o = el("option", id); o.value = id; return o;
    }));
  }
  if (S.selected !== null) select.value = S.selected;
}

// ---- the series the charts draw --------------------------------------------------

function exploits(columns) {  // the series' exploits, sent column by column
  return columns.member.map((member, i) => ({member, donor: columns.donor[i],
    step: columns.step[i]}));
}

function addResults(rows, table) {  // hparams: a dict, or an index into `table`
  for (const [id, member, step, score, h] of rows) {
    const hparams = table ? table[h] : h;
    let s = S.series.get(member);
    if (!s) { s = {step: [], score: [], hp: [], id: []}; S.series.set(member, s); }
    s.step.push(step); s.score.push(score); s.hp.push(hparams); s.id.push(id);
    if (id > S.lastResult) S.lastResult = id;
    S.points++;
  }
  document.body.dataset.results = S.lastResult;
}

function memberLines(pick, ids, breaks = true) {  // x, y of members `ids`, broken at exploits
  const copies = new Map();
  for (const e of S.exploits) {
    if (!copies.has(e.member)) copies.set(e.member, []);
    copies.get(e.member).push(e.step);
  }
  const x = [], y = [], who = [];
  for (const id of ids) {
    const s = S.series.get(id);
    if (!s) continue;
    const cuts = copies.get(id) || [];
    for (let i = 0; i < s.step.length; i++) {
      if (breaks && i > 0 && cuts.some((c) => c >= s.step[i - 1] && c < s.step[i])) {
        x.push(null); y.push(null); who.push(null);
      }
      x.push(s.step[i]); y.push(pick(s, i)); who.push(id);
    }
    x.push(null); y.push(null); who.push(null);
  }
  return {x, y, who};
}

function ranked() {  // member ids, best score first (the charts colour the first ten)
  return [...S.members.values()].sort((a, b) => (better(a.score, b.score) ? -1
    : better(b.score, a.score) ? 1 : a.id - b.id)).map((m) => m.id);
}

function lineTraces(pick, hover, breaks = true) {
  const order = ranked();
  const many = order.length > 12;
  const shown = many ? order.slice(0, 10) : order;
  if (S.selected !== null && !shown.includes(S.selected)) shown.push(S.selected);
  const traces = [];
  if (many) {
    const rest = order.filter((id) => !shown.includes(id));
    // one trace of lines alone: thousands of SVG markers would take seconds
    const l = memberLines(pick, rest, breaks);
    traces.push({x: l.x, y: l.y, customdata: l.who, name: `${rest.length} other members`,
      mode: "lines", line: {color: "rgba(120,120,120,0.35)", width: 1}, hovertemplate: hover});
  }
  shown.forEach((id, k) => {
    const l = memberLines(pick, [id], breaks);
    const m = S.members.get(id);
    traces.push({x: l.x, y: l.y, customdata: l.who, name: `member ${id}`, mode: "lines+markers",
      marker: {size: 4}, line: {color: COLORS[k % COLORS.length], width: 1.5,
        dash: m && m.status === "failed" ? "dash" : "solid"}, hovertemplate: hover});
  });
  return traces;
}

function scoreAt(member, step) {
  const s = S.series.get(member);
  if (!s) return null;
  let best = null;
  for (let i = 0; i < s.step.length && s.step[i] <= step; i++) best = s.score[i];
  return best;
}

function drawScore() {
  const P = S.plotly;
  if (!P) return;
  const traces = lineTraces((s, i) => s.score[i],
    "member %{customdata}<br>step %{x}<br>score %{y}<extra></extra>");
  // the exploits of the members drawn in colour (thousands of SVG markers take seconds)
  const colored = new Set(traces.filter((t) => t.name.startsWith("member "))
    .map((t) => t.customdata.find((x) => x !== null)));
  const marks = S.exploits.filter((e) => colored.has(e.member)).slice(-2000);
  traces.push({x: marks.map((e) => e.step), y: marks.map((e) => scoreAt(e.member, e.step)),
    mode: "markers", name: "exploit", marker: {symbol: "triangle-up", size: 8, color: "#d62728"},
    text: marks.map((e) => esc(`member ${e.member} copied donor ${e.donor} at step ${e.step}`)),
    hovertemplate: "%{text}<extra></extra>"});
  if (S.bestLineage && S.bestLineage.points.length) {
    const pts = S.bestLineage.points;
    traces.unshift({x: pts.map((p) => p[0]), y: pts.map((p) => p[1]), mode: "lines",
      name: `best lineage (member ${S.bestLineage.member})`, hoverinfo: "skip",
      line: {color: "rgba(0,0,0,0.18)", width: 9}});
  }
  const s = S.summary || {};
  const none = S.points ? [] : [{text: "no results yet", showarrow: false, font: {size: 16},
    xref: "paper", yref: "paper", x: 0.5, y: 0.5}];
  P.react("score-chart", traces, {margin: {t: 10, r: 10}, hovermode: "closest",
    annotations: none,
    xaxis: {title: {text: "step"}}, yaxis: {title: {text: esc(s.score || "score")}},
    legend: {orientation: "h", y: -0.2}, uirevision: S.run}, {displaylogo: false, responsive: true});
}

function drawHparams() {
  const P = S.plotly;
  if (!P) return;
  const box = $("hparam-charts");
  const names = (S.summary && S.summary.hparams) || [];
  if (box.dataset.names !== names.join("\u0000")) {
    box.replaceChildren(...names.map((n, i) => {
      const d = el("div", null, "small-chart"); d.id = `hparam-chart-${i}`; return d;
    }));
    box.dataset.names = names.join("\u0000");
  }
  names.forEach((name, i) => {
    const traces = lineTraces((s, k) => (s.hp[k] ? s.hp[k][name] : null),
      "member %{customdata}<br>step %{x}<br>" + esc(name) + " %{y}<extra></extra>", false);
    for (const t of traces) { t.showlegend = false; t.line.shape = "hv"; }
    if (S.bestLineage && S.bestLineage.points.length) {
      const pts = S.bestLineage.points;
      traces.push({x: pts.map((p) => p[0]), y: pts.map((p) => (p[2] ? p[2][name] : null)),
        mode: "lines+markers", line: {color: "#000", width: 3, shape: "hv"}, marker: {size: 4},
        name: "best schedule", customdata: pts.map((p) => p[3]),
        hovertemplate: "best lineage (member %{customdata})<br>step %{x}<br>" + esc(name) +
          " %{y}<extra></extra>"});
    }
    P.react(`hparam-chart-${i}`, traces, {margin: {t: 24, r: 10, b: 30},
      title: {text: esc(name), font: {size: 13}}, hovermode: "closest", uirevision: S.run,
      yaxis: {type: (S.summary.log_hparams || []).includes(name) ? "log" : "-"}},
    {displaylogo: false, responsive: true});
  });
}

// ---- lineage --------------------------------------------------------------------

function copyText(c) {
  return `member ${c.member} copied donor ${c.donor} at step ${c.step}` +
    (c.donor_step !== null && c.donor_step !== c.step ? ` (the donor at step ${c.donor_step})` : "") +
    `\nhparams before: ${hp(c.before)}\nhparams after:  ${hp(c.after)}`;
}

function drawLineage() {
  const L = S.lineage;
  const body = $("copies-table").tBodies[0];
  body.replaceChildren(...(L ? L.copies : []).map((c) => row([c.step, c.member, c.donor,
    c.donor_step, hp(c.before), hp(c.after)])));
  const P = S.plotly;
  if (P && !L) {
    P.purge("lineage-chart");
    $("copy-detail").textContent = "no lineage yet: no member has a score";
  }
  if (!P || !L) return;
  $("lineage-member").value = L.member;  // the best member's, until one is chosen
  const traces = [];
  const owners = L.stretches.map((s) => s.member);
  const bars = {x: [], y: []};  // one trace each, broken by nulls: a trace per bar is slow
  L.stretches.forEach((st, i) => {
    const from = i === 0 ? 0 : (L.copies[i - 1].donor_step ?? L.copies[i - 1].step);
    const next = L.copies[i];
    const to = next ? (next.donor_step ?? next.step) : (st.last ?? from);
    bars.x.push(from, to, null);
    bars.y.push(`member ${st.member}`, `member ${st.member}`, null);
  });
  traces.push({...bars, mode: "lines", line: {width: 10, color: "#4c78a8"}, showlegend: false,
    hoverinfo: "skip"});  // the points and the copies answer a hover
  const pts = L.points;
  traces.push({x: pts.map((p) => p[0]), y: pts.map((p) => `member ${p[3]}`), mode: "markers",
    marker: {size: 5, color: "#333"}, showlegend: false,
    text: pts.map((p) => esc(`member ${p[3]} at step ${p[0]}: score ${num(p[1])}`) +
      "<br>" + esc(hp(p[2]))),
    hovertemplate: "%{text}<extra></extra>"});
  const links = {x: [], y: []};
  for (const c of L.copies) {
    const at = c.donor_step ?? c.step;
    links.x.push(at, at, null);
    links.y.push(`member ${c.donor}`, `member ${c.member}`, null);
  }
  traces.push({...links, mode: "lines", line: {color: "#d62728", width: 1.5, dash: "dot"},
    hoverinfo: "skip", showlegend: false});
  traces.push({x: L.copies.map((c) => c.donor_step ?? c.step),
    y: L.copies.map((c) => `member ${c.member}`), mode: "markers", name: "copies",
    marker: {symbol: "diamond", size: 13, color: "#d62728", line: {color: "#fff", width: 1}},
    text: L.copies.map((c) => esc(copyText(c)).replace(/\n/g, "<br>")),
    hovertemplate: "%{text}<extra></extra>", showlegend: false});
  const cats = [...new Set(owners.map((m) => `member ${m}`))];
  const chart = $("lineage-chart");
  P.react(chart, traces, {margin: {t: 10, r: 10, l: 90}, hovermode: "closest",
    xaxis: {title: {text: "step"}}, yaxis: {type: "category", categoryarray: cats},
    height: Math.max(260, 60 + 36 * cats.length)}, {displaylogo: false, responsive: true});
  if (!chart.dataset.bound) {
    chart.dataset.bound = "1";
    const show = (ev) => {
      const p = ev.points && ev.points[0];
      if (!p || !p.data || p.data.name !== "copies") return;
      $("copy-detail").textContent = copyText(S.lineage.copies[p.pointIndex]);
    };
    chart.on("plotly_hover", show);
    chart.on("plotly_click", show);
  }
  $("copy-detail").textContent = L.copies.length ? "" :
    `member ${L.member} copied no one: its weights are its own`;
}

async function loadLineage() {
  const best = S.summary ? S.summary.best : null;
  const want = S.selected !== null ? S.selected : best;
  if (want === null || want === undefined) { S.lineage = null; S.bestLineage = null; return; }
  const base = `/api/runs/${S.run}/lineage/`;
  S.lineage = await get(base + want);
  S.bestLineage = best === want ? S.lineage : best === null ? null : await get(base + best);
  S.lastLineage = Date.now();
}

function selectMember(id) {
  S.selected = id;
  renderMembers();
  loadLineage().then(() => { drawLineage(); drawScore(); drawHparams(); }).catch(fail);
  $("lineage").scrollIntoView({behavior: "smooth"});
}

// ---- events, Pareto front, strategy state, side by side ---------------------------

function eventWhat(e) {
  if (e.kind === "exploit" || e.kind === "explore")
    return `${hp(e.before)} → ${hp(e.after)}` + (e.detail ? ` (${e.detail})` : "");
  return e.detail || "";
}
function eventFilter() {
  const member = $("event-member").value;
  return {kind: $("event-kind").value, member: member === "" ? null : Number(member)};
}
function matches(e, f) {
  return (!f.kind || e.kind === f.kind) && (f.member === null || e.member === f.member);
}
function eventRow(e) {
  const tr = row([e.id, e.kind, e.member, e.donor, e.step, eventWhat(e)],
    e.kind === "failed" ? "failed" : null);
  tr.dataset.event = e.id;
  return tr;
}
async function loadEvents() {
  const f = eventFilter();
  const q = new URLSearchParams({limit: "200"});
  if (f.kind) q.set("kind", f.kind);
  if (f.member !== null) q.set("member", String(f.member));
  const got = await get(`/api/runs/${S.run}/events?${q}`);
  $("events-table").tBodies[0].replaceChildren(...got.events.map(eventRow));
}
function addEvents(events) {
  const f = eventFilter();
  const body = $("events-table").tBodies[0];
  for (const e of events) {
    if (e.id > S.lastEvent) S.lastEvent = e.id;
    if (e.kind === "exploit") S.exploits.push(e);
    if (matches(e, f)) body.insertBefore(eventRow(e), body.firstChild);
  }
  while (body.rows.length > 200) body.deleteRow(-1);
}

async function drawFront(step) {
  const P = S.plotly;
  const s = S.summary;
  if (!P || !s || !s.objectives) return;
  const q = step === undefined || step === null ? "" : `?step=${step}`;
  const now = await get(`/api/runs/${S.run}/front${q}`);
  S.frontSteps = now.steps;
  const slider = $("front-step");
  slider.max = Math.max(0, now.steps.length - 1);
  if (step === undefined || step === null) slider.value = slider.max;
  $("front-step-value").textContent = now.step === null ? "" : `step ${now.step}`;
  const names = Object.keys(now.objectives);
  const [a, b] = [0, Math.min(1, names.length - 1)];
  const traces = [];
  const idx = Number(slider.value);
  const earlier = [0.25, 0.5, 0.75].map((f) => now.steps[Math.floor(f * idx)])
    .filter((x, i, all) => x !== undefined && x !== now.step && all.indexOf(x) === i);
  for (const [k, at] of earlier.entries()) {
    const old = await get(`/api/runs/${S.run}/front?step=${at}`);
    const f = old.points.filter((p) => p.rank === 0).sort((p, q) => p.values[a] - q.values[a]);
    traces.push({x: f.map((p) => p.values[a]), y: f.map((p) => p.values[b]),
      mode: "lines+markers", name: `front at step ${at}`, hoverinfo: "skip",
      line: {color: `rgba(214,39,40,${0.15 + 0.15 * k})`, shape: "hv"}});
  }
  const text = (p) => esc(`member ${p.member}: ` + names.map((n, i) => `${n} ${num(p.values[i])}`)
    .join(", ") + (p.rank === 0 ? " (on the front)" : ` (front ${p.rank})`));
  const others = now.points.filter((p) => p.rank !== 0);
  traces.push({x: others.map((p) => p.values[a]), y: others.map((p) => p.values[b]),
    mode: "markers", name: "dominated", marker: {color: "#888", size: 8},
    text: others.map(text), hovertemplate: "%{text}<extra></extra>"});
  const front = now.points.filter((p) => p.rank === 0).sort((p, q) => p.values[a] - q.values[a]);
  traces.push({x: front.map((p) => p.values[a]), y: front.map((p) => p.values[b]),
    mode: "lines+markers", name: `front at step ${now.step}`, line: {color: "#d62728", shape: "hv"},
    marker: {size: 10}, text: front.map(text), hovertemplate: "%{text}<extra></extra>"});
  P.react("front-chart", traces, {margin: {t: 10, r: 10}, hovermode: "closest",
    xaxis: {title: {text: esc(`${names[a]} (${now.objectives[names[a]]})`)}},
    yaxis: {title: {text: esc(`${names[b]} (${now.objectives[names[b]]})`)}}},
  {displaylogo: false, responsive: true});
  document.body.dataset.front = front.length;
}

async function loadStrategy() {
  const s = S.summary;
  const show = !!(s && (s.pb2 || s.fire));
  $("strategy").hidden = !show;
  for (const a of document.querySelectorAll(".if-strategy")) a.hidden = !show;
  if (!show) return;
  const got = await get(`/api/runs/${S.run}/strategy`);
  $("pb2").hidden = !s.pb2;
  $("pb2-table").tBodies[0].replaceChildren(...got.pb2.map((g) => row([g.member,
    `${g.start} → ${g.step}`, num(g.before), num(g.score), hp(g.hparams)])));
  $("fire").hidden = !got.fire;
  if (got.fire) {
    $("fire-subs").tBodies[0].replaceChildren(...Object.entries(got.fire.subs).map(([sub, ids]) =>
      row([sub === "0" ? "evaluators" : sub, ids.join(", ")])));
    $("fire-reasons").textContent = Object.entries(got.fire.stop_reasons)
      .map(([why, n]) => `${n} stopped: ${why}`).join("; ");
    $("fire-table").tBodies[0].replaceChildren(...got.fire.evaluations.slice().reverse()
      .map((e) => row([e.evaluator, e.step, e.end, e.outcome, e.what, e.why])));
  }
}

function compareOptions(opened = false) {  // opened: the run just opened comes first
  for (const id of ["compare-a", "compare-b"]) {
    const select = $(id);
    const keep = select.value;
    select.replaceChildren(...S.runs.map((r) => {
      const o = el("option", `${r.index}: ${r.label || r.store}`); o.value = r.index; return o;
    }));
    if (keep !== "") select.value = keep;
  }
  if ($("compare-a").value === "" || opened) $("compare-a").value = S.run;
  if ($("compare-b").value === "" || $("compare-b").value === $("compare-a").value)
    $("compare-b").value = S.runs.length > 1 ? (S.run === 0 ? 1 : 0) : S.run;
}

async function drawCompare() {
  const P = S.plotly;
  if (!P) return;
  const picked = [...new Set([$("compare-a").value, $("compare-b").value])].filter((v) => v !== "");
  const traces = [];
  for (const [k, index] of picked.entries()) {
    const c = await get(`/api/runs/${index}/curve`);
    const run = S.runs[Number(index)];
    const name = esc(run ? run.label || run.store : `run ${index}`);
    const reached = [];
    let top = null;
    for (const y of c.best) {
      if (y !== null && (top === null || (c.mode === "min" ? y < top : y > top))) top = y;
      reached.push(top);
    }
    traces.push({x: c.steps, y: reached, mode: "lines", name: `${name}: best`,
      line: {color: COLORS[k], width: 2.5, shape: "hv"}});
    traces.push({x: c.steps, y: c.mean, mode: "lines", name: `${name}: mean member`,
      line: {color: COLORS[k], width: 1.5, dash: "dot"}});
  }
  P.react("compare-chart", traces, {margin: {t: 10, r: 10}, hovermode: "x unified",
    xaxis: {title: {text: "step"}}, yaxis: {title: {text: "score"}},
    legend: {orientation: "h", y: -0.2}},
  {displaylogo: false, responsive: true});
  S.lastCurves = Date.now();
}

// ---- loading and following a run -------------------------------------------------

function loadPlotly() {
  if (window.Plotly) return Promise.resolve(window.Plotly);
  return new Promise((resolve, reject) => {
    const s = document.createElement("script");
    s.src = "/static/plotly-basic.min.js";
    s.onload = () => resolve(window.Plotly);
    s.onerror = () => reject(new Error("the charts' script did not load"));
    document.head.appendChild(s);
  });
}

async function drawCharts() {  // after the score chart, which is drawn first
  drawLineage();
  drawScore();  // again, with the best lineage over it
  drawHparams();
  await Promise.all([drawCompare(), S.summary && S.summary.objectives ? drawFront() : null]);
  document.body.dataset.charts = "ready";
  document.body.dataset.chartsMs = Math.round(performance.now());
}

async function openRun(index) {
  S.run = index;
  S.members = new Map(); S.series = new Map(); S.exploits = []; S.points = 0;
  S.lastResult = 0; S.lastEvent = 0; S.selected = null; S.lineage = null; S.bestLineage = null;
  delete document.body.dataset.charts;
  const o = await get(`/api/runs/${index}/overview`);
  S.summary = o.summary;
  S.updated = o.updated ?? null;
  for (const m of o.members) S.members.set(m.id, m);
  S.lastEvent = o.summary.latest_event || 0;
  if (S.runs[index]) S.runs[index] = o.summary;  // newer than the runs table's
  renderRuns();
  renderMembers();
  document.body.dataset.tables = "ready";  // the first page: both tables are filled
  document.body.dataset.tablesMs = Math.round(performance.now());
  const pareto = !!o.summary.objectives;
  $("pareto").hidden = !pareto;
  for (const a of document.querySelectorAll(".if-pareto")) a.hidden = !pareto;
  compareOptions(true);
  // after the tables, the score chart (the server reads one store one request at a time:
  // the first chart's data first), then the rest
  const [series, plotly] = await Promise.all([get(`/api/runs/${index}/series`), loadPlotly()]);
  S.plotly = plotly;
  S.exploits = exploits(series.exploits);
  addResults(series.results, series.hparams);
  S.lastResult = Math.max(S.lastResult, series.latest_result);
  drawScore();
  document.body.dataset.scoreMs = Math.round(performance.now());
  await Promise.all([loadEvents(), loadLineage()]);
  await drawCharts();
  await loadStrategy();
}

async function poll() {
  if (S.busy || !S.summary) return;
  S.busy = true;
  try {
    const runs = await get("/api/runs");
    S.runs = runs.runs;
    S.summary = {...S.summary, ...S.runs[S.run]};
    renderRuns();
    if (S.summary.state === "waiting" || S.summary.state === "error") {
      renderMembers();
      return;
    }
    const q = new URLSearchParams({results: S.lastResult, events: S.lastEvent});
    if (S.updated !== null) q.set("since", S.updated);
    const run = S.run;
    const got = await get(`/api/runs/${run}/poll?${q}`);
    if (run !== S.run) return;  // another run was opened meanwhile
    if (S.summary.latest_result !== undefined && !S.members.size) {
      await openRun(S.run);  // the run started since the page opened
      return;
    }
    for (const m of got.members) S.members.set(m.id, m);
    if (got.updated !== undefined) S.updated = got.updated;
    addResults(got.results);
    addEvents(got.events);
    if (got.members.length) renderMembers();
    if (S.points > 2 * S.budget) {  // thin again, on the server
      const series = await get(`/api/runs/${S.run}/series`);
      S.series = new Map(); S.points = 0; S.exploits = exploits(series.exploits);
      addResults(series.results, series.hparams);
    }
    const fresh = got.results.length || got.events.length;
    if (fresh && Date.now() - S.lastLineage > 3000) await loadLineage();
    if (fresh && S.plotly) {
      drawScore(); drawHparams(); drawLineage();
      if (Date.now() - S.lastCurves > 3000) await drawCompare();
      if (S.summary.objectives && Number($("front-step").value) === Number($("front-step").max))
        await drawFront();
      if (S.summary.pb2 || S.summary.fire) await loadStrategy();
    }
    S.polls++;
    document.body.dataset.polls = S.polls;
    $("live").textContent = `${S.summary.state}; updated ${new Date().toLocaleTimeString()}`;
    if (got.more) setTimeout(poll, 0);
  } catch (e) {
    $("live").textContent = e instanceof TypeError ? "the server is gone (a run's own " +
      "dashboard stops with the run: populace dashboard STORE serves it again)"
      : `poll failed: ${e.message}`;
  } finally {
    S.busy = false;
  }
}

function runFromHash() {
  const m = /run=(\d+)/.exec(location.hash);
  const i = m ? Number(m[1]) : 0;
  return i < S.runs.length ? i : 0;
}

async function main() {
  for (const k of KINDS) { const o = el("option", k); o.value = k; $("event-kind").appendChild(o); }
  $("event-kind").addEventListener("change", () => loadEvents().catch(fail));
  $("event-member").addEventListener("input", () => loadEvents().catch(fail));
  $("lineage-member").addEventListener("change", (e) => selectMember(Number(e.target.value)));
  $("front-step").addEventListener("input", (e) =>
    drawFront(S.frontSteps[Number(e.target.value)]).catch(fail));
  for (const id of ["compare-a", "compare-b"]) $(id).addEventListener("change", () =>
    drawCompare().catch(fail));
  window.addEventListener("hashchange", () => openRun(runFromHash()).catch(fail));
  const runs = await get("/api/runs");
  S.runs = runs.runs;
  S.poll = runs.poll;
  await openRun(runFromHash());
  $("live").textContent = "following";
  setInterval(poll, 1000 * S.poll);
}

main().catch(fail);
