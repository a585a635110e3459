// remediator's page: a client of the same /api, with the same bearer token (or none, behind
// a trusted SSO proxy that says who you are). What your roles cannot do is not offered;
// the API refuses it whatever the page shows. Every value
// from the API is put in the page as text (textContent), never as HTML: incident titles
// and output come from webhook payloads and playbooks, which an attacker may write.
"use strict";

const FINAL = ["succeeded", "failed", "timed_out", "refused", "interrupted", "cancelled", "rejected",
               "shadowed", "diagnosed"];
const PHASES = { diagnose: ", diagnose", on_failure: ", on failure" };
const ACTIONS = {
  approve: ["waiting_approval"],
  reject: ["waiting_approval"],
  cancel: ["queued", "waiting_approval", "running", "verifying"],
};
const POLL_MS = 2000;
let timer = null;
let me = null; // GET /api/whoami: name, roles, via, permissions

function may(permission) {
  return me !== null && me.permissions.includes(permission);
}

function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (name === "class") node.className = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function when(iso) {
  return iso ? new Date(iso).toLocaleString() : "";
}

function showError(text) {
  document.getElementById("error").textContent = text || "";
}

class Unauthorized extends Error {}

async function api(path, options = {}) {
  const token = sessionStorage.getItem("token");
  const headers = { ...(token ? { Authorization: `Bearer ${token}` } : {}), ...(options.headers || {}) };
  if (options.body !== undefined) headers["Content-Type"] = "application/json";
  const answer = await fetch(path, { ...options, headers });
  if (answer.status === 401) {
    signOut(token ? "The token was refused: sign in again." : "");
    throw new Unauthorized();
  }
  const body = await answer.json().catch(() => null);
  if (!answer.ok) {
    const detail = body && body.detail ? body.detail : answer.statusText;
    throw new Error(`${answer.status} ${body && body.error ? body.error : ""}: ${detail}`);
  }
  return { body, headers: answer.headers };
}

function signOut(why) {
  sessionStorage.removeItem("token");
  me = null;
  document.getElementById("sign-in").hidden = false;
  document.getElementById("view").replaceChildren();
  document.getElementById("sign-out").hidden = true;
  document.getElementById("who").textContent = "";
  document.getElementById("sign-in-error").textContent = why || "";
  document.getElementById("paused").hidden = true;
  document.getElementById("frozen").hidden = true;
  document.getElementById("pause-switch").hidden = true;
  stopPolling();
}

function signedIn() {
  document.getElementById("sign-in").hidden = true;
  // Signed in by the SSO proxy: signing out is the proxy's business.
  document.getElementById("sign-out").hidden = me.via !== "token";
  document.getElementById("who").textContent =
    `${me.name} (${me.roles.length ? me.roles.join(", ") : "no role"})`;
  document.getElementById("nav-simulate").hidden = !may("operate");
}

function stopPolling() {
  if (timer !== null) clearTimeout(timer);
  timer = null;
}

function poll(step) {
  stopPolling();
  const again = async () => {
    try {
      await step();
      await showAutomation();
      showError("");
    } catch (error) {
      if (error instanceof Unauthorized) return;
      showError(error.message);
    }
    timer = setTimeout(again, POLL_MS);
  };
  again();
}

function mount(templateId) {
  stopFollowing();
  const view = document.getElementById("view");
  view.replaceChildren(document.getElementById(templateId).content.cloneNode(true));
  return view;
}

// ---------------------------------------------------------------- executions

function executionRow(execution) {
  return el("tr", { class: "link", "data-id": execution.id,
                    onclick: () => { location.hash = `#/executions/${execution.id}`; } },
    el("td", {}, when(execution.created_at)),
    el("td", { class: `status ${execution.status}` }, execution.status,
       execution.guard ? ` (${execution.guard})` : "",
       execution.mode !== "auto" && execution.status !== "shadowed" ? ` [${execution.mode}]` : ""),
    el("td", {}, execution.runbook),
    el("td", {}, execution.title, execution.attached ? ` (+${execution.attached})` : ""),
    el("td", {}, execution.trigger === "manual" ? `${execution.source} (manual)` : execution.source),
    el("td", { class: "muted" }, execution.error || ""));
}

async function showExecutions() {
  const view = mount("executions-view");
  const form = view.querySelector("#filters");
  const rows = view.querySelector("#executions tbody");
  const more = view.querySelector("#more");
  let older = null;
  const query = (cursor) => {
    const params = new URLSearchParams({ limit: "50" });
    for (const [name, value] of new FormData(form)) if (value) params.set(name, value);
    if (cursor) params.set("cursor", cursor);
    return `/api/executions?${params}`;
  };
  const refresh = async () => {
    const { body, headers } = await api(query(null));
    rows.replaceChildren(...body.map(executionRow));
    older = headers.get("X-Next-Cursor");
    more.hidden = !older;
  };
  more.addEventListener("click", async () => {
    stopPolling();  // a longer list stays as it is; filters or a reload go live again
    const { body, headers } = await api(query(older));
    rows.append(...body.map(executionRow));
    older = headers.get("X-Next-Cursor");
    more.hidden = !older;
  });
  form.addEventListener("change", () => poll(refresh));
  form.addEventListener("submit", (event) => { event.preventDefault(); poll(refresh); });
  api("/api/runbooks").then(({ body }) => {
    view.querySelector("#runbook-names").replaceChildren(
      ...body.runbooks.map((item) => el("option", { value: item.runbook.name })));
  }).catch(() => {});
  poll(refresh);
}

function facts(target, pairs) {
  target.replaceChildren(...pairs.filter(([, value]) => value !== null && value !== undefined && value !== "")
    .flatMap(([name, value]) => [el("dt", {}, name), el("dd", {}, value)]));
}

function renderExecution(view, execution) {
  view.querySelector(".id").textContent = execution.id;
  facts(view.querySelector(".facts"), [
    ["Status", el("span", { class: `status ${execution.status}` }, execution.status)],
    ["Runbook", execution.runbook],
    ["Trigger", execution.trigger],
    ["Guard", execution.guard],
    ["Mode", `${execution.mode}: ${execution.mode_reason || ""}`],
    ["Targets", (execution.targets || []).join(", ")],
    ["Error", el("span", { class: "error" }, execution.error || "")],
    ["Concurrency key", execution.concurrency_key],
    ["Worker", execution.worker],
    ["Created", when(execution.created_at)],
    ["Finished", when(execution.finished_at)],
  ]);
  const incident = execution.incident;
  facts(view.querySelector(".incident"), [
    ["Title", incident.title],
    ["Source", `${incident.source} (${incident.event_type})`],
    ["Severity", incident.severity],
    ["Service", incident.service],
    ["Link", incident.url ? el("a", { href: incident.url, rel: "noreferrer noopener" }, incident.url) : null],
    ["Fingerprint", incident.fingerprint],
    ["Labels", Object.entries(incident.labels || {}).map(([k, v]) => `${k}=${v}`).join(", ")],
  ]);
  view.querySelector(".steps").replaceChildren(...execution.steps.map((step, index) =>
    el("div", { class: "step" },
      el("h4", {}, `Step ${index + 1}: ${step.kind} `,
         step.spec.playbook || step.spec.workdir || "",
         step.id ? ` (${step.id})` : "", PHASES[step.phase] || "", " — ",
         el("span", { class: `status ${step.status}` }, step.status)),
      step.when ? el("p", { class: "muted" }, "when ", el("code", {}, step.when)) : null,
      step.detail && step.detail.summary ? el("p", {}, step.detail.summary) : null,
      // What the step found, by name: data, shown as text.
      step.outputs ? el("table", { class: "outputs" }, el("caption", {}, "Outputs"),
        ...Object.entries(step.outputs).map(([name, value]) => el("tr", {}, el("th", {}, name),
          el("td", {}, el("code", {}, typeof value === "string" ? value : JSON.stringify(value))))))
        : null,
      ...step.attempt_log.map((attempt) => el("details", { open: "" },
        el("summary", {}, `attempt ${attempt.number}: ${attempt.status}, exit ${attempt.rc}, `,
           `${attempt.duration_s}s`, attempt.error ? ` — ${attempt.error}` : ""),
        el("pre", { class: "output" }, attempt.output_tail))))));
  view.querySelector(".escalations tbody").replaceChildren(...execution.escalations.map((e) =>
    el("tr", {}, el("td", {}, e.target), el("td", {}, e.reason),
       el("td", { class: `status ${e.status}` }, e.status),
       el("td", {}, e.attempts), el("td", { class: "muted" }, e.last_error || ""))));
  view.querySelector(".history").replaceChildren(...execution.actions.map((a) =>
    el("li", {}, `${when(a.at)}: ${a.action} by ${a.by}`, a.reason ? ` — ${a.reason}` : "")));
  for (const button of view.querySelectorAll(".actions button")) {
    button.disabled = !ACTIONS[button.dataset.action].includes(execution.status);
  }
}

// ---------------------------------------------------------------- live output

let following = null;  // the AbortController of the stream the page follows, if any

function stopFollowing() {
  if (following !== null) following.abort();
  following = null;
}

// Server-sent events through fetch, not EventSource: the token goes in the Authorization
// header, never in the URL. Output is text (textContent), whatever a playbook printed.
async function followLive(view, id, onState) {
  stopFollowing();
  const controller = new AbortController();
  following = controller;
  const section = view.querySelector(".live");
  const pre = view.querySelector(".live-output");
  let answer;
  try {
    // After what this page already shows, if a dropped stream is followed again.
    const after = Number(pre.dataset.seq || 0);
    answer = await fetch(`/api/executions/${encodeURIComponent(id)}/events?after=${after}`, {
      headers: { Authorization: `Bearer ${sessionStorage.getItem("token")}` },
      signal: controller.signal,
    });
  } catch (error) {
    return;
  }
  if (!answer.ok) {
    if (following === controller) following = null;
    return;
  }
  const reader = answer.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffered = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffered += value;
      let end;
      while ((end = buffered.indexOf("\n\n")) >= 0) {
        const block = buffered.slice(0, end);
        buffered = buffered.slice(end + 2);
        const kind = (block.match(/^event: (.*)$/m) || [])[1];
        const data = (block.match(/^data: (.*)$/m) || [])[1];
        if (!kind || data === undefined) continue;
        const event = JSON.parse(data);
        if (kind === "output") {
          section.hidden = false;
          // The reader scrolled up to read: leave them there.
          const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
          const step = `step ${event.step}, attempt ${event.attempt}`;
          if (step !== pre.dataset.step) {
            pre.append(`${pre.dataset.step ? "\n" : ""}--- ${step}\n`);
            pre.dataset.step = step;
          }
          pre.append(event.text);
          pre.dataset.seq = event.seq;
          if (atBottom) pre.scrollTop = pre.scrollHeight;
        } else if (kind === "state" || kind === "end") {
          onState();
        }
      }
    }
  } catch (error) {
    // Aborted (the reader left the page), or the connection dropped: the page's own
    // refresh follows it again while it runs.
  } finally {
    if (following === controller) following = null;
  }
}

async function showExecution(id) {
  const view = mount("execution-view");
  view.querySelector(".actions").hidden = !may("operate");
  for (const button of view.querySelectorAll(".actions button")) {
    button.addEventListener("click", async () => {
      const action = button.dataset.action;
      const reason = view.querySelector("#reason").value;
      try {
        const { body } = await api(`/api/executions/${encodeURIComponent(id)}/${action}`, {
          method: "POST", body: JSON.stringify({ reason }),
        });
        renderExecution(view, body);
        poll(refresh);
      } catch (error) {
        if (!(error instanceof Unauthorized)) showError(error.message);
      }
    });
  }
  const refresh = async () => {
    const { body } = await api(`/api/executions/${encodeURIComponent(id)}`);
    renderExecution(view, body);
    if (FINAL.includes(body.status) && !body.escalations.some((e) => e.status === "pending")) {
      stopPolling();
    }
    if (!FINAL.includes(body.status) && following === null) {
      followLive(view, id, () => refresh().catch(() => {}));
    }
  };
  poll(refresh);
}

// ---------------------------------------------------------------- runbooks

function breakerLine(view, name, openedAt) {
  if (!openedAt) return null;
  const reset = el("button", { type: "button", class: "breaker-reset", onclick: async () => {
    const reason = prompt(`Why reset the breaker of ${name}? (recorded)`);
    if (!reason) return;
    try {
      await api(`/api/runbooks/${encodeURIComponent(name)}/breaker/reset`, {
        method: "POST", body: JSON.stringify({ reason }),
      });
      renderRunbooks(view, (await api("/api/runbooks")).body);
      showError("");
    } catch (error) {
      if (!(error instanceof Unauthorized)) showError(error.message);
    }
  } }, "Reset breaker");
  reset.hidden = !may("operate");
  return el("p", { class: "breaker-open" }, `Breaker open since ${when(openedAt)} `, reset);
}

function renderRunbooks(view, set) {
  view.querySelector(".loaded-at").textContent = when(set.loaded_at);
  view.querySelector("#runbooks").replaceChildren(...set.runbooks.map(({ file, line, runbook, breaker_opened_at }) =>
    el("div", { class: "runbook", "data-name": runbook.name },
      el("h3", {}, runbook.name),
      breakerLine(view, runbook.name, breaker_opened_at),
      runbook.description ? el("p", {}, runbook.description) : null,
      el("p", { class: "muted" }, `${file}:${line}`),
      el("h4", {}, "Matches"), el("pre", { class: "match" }, JSON.stringify(runbook.match, null, 2)),
      el("h4", {}, "Steps"), el("pre", {}, JSON.stringify(runbook.steps, null, 2)),
      el("p", { class: "muted" }, [
        runbook.concurrency ? `concurrency ${runbook.concurrency}` : "",
        runbook.cooldown ? `cooldown ${runbook.cooldown}s` : "",
        runbook.mode ? `mode ${runbook.mode}` : "",
        runbook.approval && runbook.approval.required ? "needs approval" : "",
        runbook.escalate && runbook.escalate.length ? `escalates to ${runbook.escalate.join(", ")}` : "",
      ].filter(Boolean).join(" · ")))));
}

async function showRunbooks() {
  stopPolling();
  const view = mount("runbooks-view");
  view.querySelector("#reload").hidden = !may("administer");
  view.querySelector("#reload").addEventListener("click", async () => {
    try {
      renderRunbooks(view, (await api("/api/runbooks/reload", { method: "POST" })).body);
      showError("");
    } catch (error) {
      if (!(error instanceof Unauthorized)) showError(error.message);
    }
  });
  renderRunbooks(view, (await api("/api/runbooks")).body);
}

// ---------------------------------------------------------------- simulate

function renderSimulation(target, result) {
  const parts = [];
  if (result.ignored) parts.push(el("p", {}, `Ignored: ${result.ignored}`));
  for (const item of result.incidents) {
    const incident = item.incident;
    parts.push(el("h3", {}, `${incident.status}: ${incident.title} (${incident.severity})`));
    if (!item.matched.length) parts.push(el("p", { class: "muted" }, "No runbook matches."));
    for (const match of item.matched) {
      parts.push(el("div", { class: "match", "data-runbook": match.runbook },
        el("h4", {}, `Would run ${match.runbook}`),
        el("p", { class: "mode" }, `Mode: ${match.mode} — ${match.mode_why}`),
        el("ul", {}, ...match.decided_by.map((reason) => el("li", {}, reason))),
        match.error ? el("p", { class: "error" }, match.error) : null,
        el("pre", {}, JSON.stringify(match.steps, null, 2))));
    }
    if (item.not_matched.length) {
      parts.push(el("details", {}, el("summary", {}, `${item.not_matched.length} runbook(s) do not match`),
        el("ul", {}, ...item.not_matched.map((skip) => el("li", {}, `${skip.runbook}: ${skip.why}`)))));
    }
  }
  target.replaceChildren(...parts);
}

async function showSimulate() {
  stopPolling();
  const view = mount("simulate-view");
  const form = view.querySelector("#simulate-form");
  const { body } = await api("/api/sources");
  view.querySelector("#sources").replaceChildren(...body.known.map((name) =>
    el("option", body.configured.includes(name) ? {} : { class: "muted" }, name)));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    let payload;
    try {
      payload = JSON.parse(data.get("payload"));
    } catch (error) {
      showError(`The payload is not JSON: ${error.message}`);
      return;
    }
    try {
      const { body: result } = await api("/api/simulate", {
        method: "POST", body: JSON.stringify({ source: data.get("source"), payload }),
      });
      renderSimulation(view.querySelector("#simulation"), result);
      showError("");
    } catch (error) {
      if (!(error instanceof Unauthorized)) showError(error.message);
    }
  });
}

// ---------------------------------------------------------------- stats

// The plotted series' colours (the page's test looks for them in a screenshot).
const COLOURS = { success: "#2e7d32", p50: "#1565c0", p90: "#ef6c00" };

function percent(rate) {
  return rate === null ? "—" : `${(rate * 100).toFixed(1)} %`;
}

function seconds(value) {
  if (value === null) return "—";
  return value < 120 ? `${value.toFixed(1)} s` : `${(value / 60).toFixed(1)} min`;
}

function barChart(target, names, series) {
  // Runbooks along x (0..n-1, named on the axis); with two series, the first's bar to the
  // left of its runbook and the second's to the right.
  const xs = names.map((_, index) => index);
  const align = (index) => (series.length === 1 ? 0 : index === 0 ? -1 : 1);
  const options = {
    width: Math.max(360, Math.min(900, 140 * names.length + 120)), height: 240,
    legend: { live: false },
    scales: {
      x: { time: false, range: [-0.7, Math.max(0, names.length - 1) + 0.7] },
      // Bars stand on zero, whatever the smallest value.
      y: { range: (_, min, max) => [0, max > 0 ? max * 1.1 : 1] },
    },
    axes: [{ splits: () => xs, values: (_, ticks) => ticks.map((tick) => names[tick] ?? "") }, {}],
    series: [{}, ...series.map((one, index) => ({
      label: one.label, stroke: one.colour, fill: one.colour, width: 0,
      paths: uPlot.paths.bars({ size: [series.length === 1 ? 0.6 : 0.35, 80], align: align(index) }),
      points: { show: false },
    }))],
  };
  target.replaceChildren();
  return new uPlot(options, [xs, ...series.map((one) => one.values)], target);
}

async function showStats() {
  stopPolling();
  const view = document.getElementById("view");
  view.replaceChildren(document.getElementById("stats-view").content.cloneNode(true));
  const form = view.querySelector("#stats-filters");
  const load = async () => {
    const days = Number(new FormData(form).get("days"));
    const since = new Date(Date.now() - days * 86400 * 1000).toISOString();
    const { body: stats } = await api(`/api/stats?since=${encodeURIComponent(since)}`);
    const all = stats.overall;
    view.querySelector(".overall").textContent =
      `${all.runs} run(s), ${percent(all.success_rate)} succeeded, ${all.pages_avoided} ` +
      `page(s) avoided, time to remediate p50 ${seconds(all.time_to_remediate_s.p50)}.`;
    const rows = stats.runbooks.map((row) => el("tr", { "data-runbook": row.runbook },
      el("td", {}, row.runbook), el("td", {}, row.runs), el("td", {}, row.succeeded),
      el("td", {}, percent(row.success_rate)), el("td", {}, row.escalated),
      el("td", {}, row.pages_avoided),
      el("td", {}, `${seconds(row.time_to_remediate_s.p50)} / ${seconds(row.time_to_remediate_s.p90)}`),
      el("td", {}, seconds(row.approval_wait_s.p50))));
    view.querySelector("#stats tbody").replaceChildren(...rows);
    const names = stats.runbooks.map((row) => row.runbook);
    barChart(view.querySelector("#plot-success"), names, [
      { label: "success rate", colour: COLOURS.success,
        values: stats.runbooks.map((row) => row.success_rate === null ? null : row.success_rate * 100) },
    ]);
    barChart(view.querySelector("#plot-time"), names, [
      { label: "p50", colour: COLOURS.p50, values: stats.runbooks.map((row) => row.time_to_remediate_s.p50) },
      { label: "p90", colour: COLOURS.p90, values: stats.runbooks.map((row) => row.time_to_remediate_s.p90) },
    ]);
  };
  form.addEventListener("change", () => load().catch((error) => {
    if (!(error instanceof Unauthorized)) showError(error.message);
  }));
  await load();
}

// ---------------------------------------------------------------- the pause switch

// On every view: a banner while automation is paused, and the switch for those who may.
async function showAutomation() {
  const { body } = await api("/api/automation");
  const pause = body.pause;
  const active = body.freezes.filter((freeze) => freeze.active);
  const frozen = document.getElementById("frozen");
  frozen.hidden = active.length === 0;
  frozen.querySelector(".frozen-what").textContent = active.map((freeze) =>
    `${freeze.name} until ${when(freeze.end)} (${freeze.runbooks.join(", ")}: new runs ${freeze.mode})`).join("; ");
  const banner = document.getElementById("paused");
  banner.hidden = !pause.paused;
  document.getElementById("pause-switch").hidden = pause.paused || !may("operate");
  document.getElementById("resume").hidden = !may("operate");
  if (pause.paused) {
    banner.querySelector(".paused-what").textContent =
      `by ${pause.by} since ${when(pause.since)}${pause.until ? ` until ${when(pause.until)}` : ""}` +
      ` (${pause.runbooks ? pause.runbooks.join(", ") : "all runbooks"}: new runs ${pause.mode}): ${pause.reason}`;
  }
}

async function throwSwitch(path, body) {
  try {
    await api(path, { method: "POST", body: JSON.stringify(body) });
    await showAutomation();
    showError("");
  } catch (error) {
    if (!(error instanceof Unauthorized)) showError(error.message);
  }
}

document.getElementById("pause").addEventListener("click", () => {
  const reason = document.getElementById("pause-reason").value.trim();
  if (!reason) { showError("Say why you pause automation (it is recorded)."); return; }
  const duration = document.getElementById("pause-for").value.trim();
  throwSwitch("/api/automation/pause", duration ? { reason, for: duration } : { reason });
});
document.getElementById("resume").addEventListener("click", () =>
  throwSwitch("/api/automation/resume", { reason: "resumed from the page" }));

// ---------------------------------------------------------------- routing

async function whoAmI() {
  if (me !== null) return true;
  try {
    me = (await api("/api/whoami")).body;
    return true;
  } catch (error) {
    if (!(error instanceof Unauthorized)) showError(error.message);
    return false;
  }
}

async function route() {
  if (!(await whoAmI())) return;
  signedIn();
  showError("");
  showAutomation().catch((error) => { if (!(error instanceof Unauthorized)) showError(error.message); });
  const [, page, id] = (location.hash || "#/executions").split("/");
  try {
    if (page === "executions" && id) await showExecution(decodeURIComponent(id));
    else if (page === "runbooks") await showRunbooks();
    else if (page === "simulate") await showSimulate();
    else if (page === "stats") await showStats();
    else await showExecutions();
  } catch (error) {
    if (!(error instanceof Unauthorized)) showError(error.message);
  }
}

document.getElementById("sign-in-form").addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem("token", document.getElementById("token").value);
  route();
});
document.getElementById("sign-out").addEventListener("click", () => signOut());
window.addEventListener("hashchange", route);
route();
