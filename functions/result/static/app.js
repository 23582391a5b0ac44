"use strict";
// The task dashboard. Everything it shows comes from the API it is served by, with the user's own token when the API
// wants one; API data only ever reaches the page as text nodes (textContent), never as markup.

const base = new URL(".", window.location.href);
const TOKEN_KEY = "lrt-token";
const REFRESH_MS = 2000;
// An input kept in the payload bucket is shown as a link, valid 15 minutes: asked for again after 10.
const INPUT_LINK_MS = 10 * 60 * 1000;
const IAM_ONLY = "This API takes only AWS IAM (SigV4-signed) requests, which a web page cannot make, so the dashboard " +
  "cannot show its tasks. The dashboard serves an API deployed with AuthType JWT (paste a bearer token above) or NONE; " +
  "for this one use the CLI: lrt --auth sigv4 ls";

const $ = (id) => document.getElementById(id);
const state = {
  schemas: {}, tasks: {}, items: [], extra: [], cursor: null, timer: null, selected: null, loading: false,
  inputs: {}, iamOnly: false,
};

// ---- the token: from the URL's fragment (never sent to a server) or pasted; kept in sessionStorage at most

function takeTokenFromFragment() {
  const fragment = new URLSearchParams(window.location.hash.slice(1));
  const token = fragment.get("token");
  if (token) {
    sessionStorage.setItem(TOKEN_KEY, token);
    history.replaceState(null, "", window.location.pathname + window.location.search);
  }
}

function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (token()) headers.Authorization = `Bearer ${token()}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(new URL(path, base), {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body), redirect: "manual",
    });
  } catch (error) {
    notice("The API cannot be reached: is it running?");
    throw error;
  }
  let data = null;
  const text = await response.text();
  if (text) {
    try { data = JSON.parse(text); } catch { data = { detail: text }; }
  }
  if (response.status === 401) notice("This API wants a bearer token: paste one above, or open this page with #token=… in its address.");
  else if (response.status === 403 && refusedByGateway(response)) iamOnly();
  else if (response.status === 403) notice((data && data.detail) || "This API refused the request.");
  return { status: response.status, data };
}

// The API's functions answer every error as application/problem+json. A 403 in any other form is API Gateway's own
// ({"message": …}, with an x-amzn-errortype header: "How do I troubleshoot HTTP 403 errors from API Gateway?"), and
// with the routes' authorizers that the template sets, only its IAM authorization answers 403 (a JWT authorizer
// refuses a missing or bad token with 401): the request was not signed with SigV4, which a page cannot do.
function refusedByGateway(response) {
  return !(response.headers.get("Content-Type") || "").startsWith("application/problem+json");
}

function iamOnly() {
  state.iamOnly = true;
  clearTimeout(state.timer);
  notice(IAM_ONLY);
}

function notice(text) {
  $("notice").textContent = text;
}

function element(tag, text, attributes = {}) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  return node;
}

// ---- the task kinds and their input schemas, from the API's OpenAPI document

async function loadDocument() {
  const { status, data } = await api("GET", "openapi.json");
  if (status !== 200 || !data) return false;
  state.schemas = data.components.schemas;
  state.tasks = {};
  for (const [path, item] of Object.entries(data.paths)) {
    if (item.post && item.post.operationId && item.post.operationId.startsWith("submit_")) {
      const name = path.slice(1);
      state.tasks[name] = { schema: resolve(item.post.requestBody.content["application/json"].schema), summary: item.post.summary || "" };
    }
  }
  const names = Object.keys(state.tasks).sort();
  const filter = $("filter-task");
  const chooser = $("submit-task");
  filter.replaceChildren(element("option", "all tasks", { value: "" }));
  chooser.replaceChildren();
  for (const name of names) {
    filter.append(element("option", name, { value: name }));
    chooser.append(element("option", name, { value: name }));
  }
  buildForm();
  notice("");
  return true;
}

function resolve(schema) {
  if (schema && schema.$ref) return resolve(state.schemas[schema.$ref.split("/").pop()]);
  return schema || {};
}

function typeOf(schema) {
  const options = (schema.anyOf || [schema]).map(resolve);
  const types = new Set(options.map((option) => option.type));
  if ([...types].every((type) => type === "integer" || type === "number")) return "number";
  if (types.size === 1 && types.has("boolean")) return "boolean";
  if (types.size === 1 && types.has("string")) return "string";
  return "json";
}

// ---- the form for a new task, one field per property of the task's input model

function buildForm() {
  const name = $("submit-task").value;
  const task = state.tasks[name];
  const fields = $("fields");
  fields.replaceChildren();
  $("submit-error").textContent = "";
  $("submit-description").textContent = task ? task.summary : "";
  if (!task) return;
  const required = new Set(task.schema.required || []);
  for (const [field, raw] of Object.entries(task.schema.properties || {})) {
    const schema = resolve(raw);
    const kind = typeOf(schema);
    const id = `field-${field}`;
    const wrapper = element("div", undefined, { class: "field" });
    const label = element("label", `${field}${required.has(field) ? " (required)" : ""}`, { for: id });
    const hintText = kind === "json" ? "JSON, e.g. [1, 2, 3]" : kind === "number" ? "a number" : kind === "boolean" ? "true or false" : "text";
    const hint = element("span", schema.description || hintText, { class: "hint", id: `${id}-hint` });
    const input = kind === "json" ? element("textarea") : element("input", undefined, { type: "text" });
    if (kind === "number") input.setAttribute("inputmode", "decimal");
    input.id = id;
    input.name = field;
    input.dataset.kind = kind;
    input.setAttribute("aria-describedby", `${id}-hint ${id}-error`);
    if (required.has(field)) input.setAttribute("aria-required", "true");
    if (schema.default !== undefined) input.value = kind === "json" ? JSON.stringify(schema.default) : String(schema.default);
    const error = element("p", "", { class: "error", id: `${id}-error`, "aria-live": "polite" });
    wrapper.append(label, hint, input, error);
    fields.append(wrapper);
  }
}

function clearErrors() {
  $("submit-error").textContent = "";
  for (const input of $("fields").querySelectorAll("input, textarea")) {
    input.removeAttribute("aria-invalid");
    $(`${input.id}-error`).textContent = "";
  }
}

function readForm() {
  // A value is JSON when it parses as JSON, else the text itself, as the CLI reads key=value: the API then says what
  // is wrong with it, next to the field.
  const body = {};
  for (const input of $("fields").querySelectorAll("input, textarea")) {
    const text = input.value.trim();
    if (text === "") continue;
    if (input.dataset.kind === "string") body[input.name] = input.value;
    else {
      try { body[input.name] = JSON.parse(text); } catch { body[input.name] = text; }
    }
  }
  return body;
}

async function submitTask(event) {
  event.preventDefault();
  clearErrors();
  const name = $("submit-task").value;
  const { status, data } = await api("POST", encodeURIComponent(name), readForm());
  if (status === 202) {
    $("submit-status").textContent = `Submitted ${name} ${data.task_id}.`;
    await refresh();
    return;
  }
  $("submit-status").textContent = "";
  if (status === 422 && data && Array.isArray(data.errors)) {
    let first = null;
    for (const problem of data.errors) {
      const field = String(problem.field || "").split(".")[0];
      const input = $(`field-${field}`);
      if (input) {
        input.setAttribute("aria-invalid", "true");
        $(`field-${field}-error`).textContent = problem.message;
        first = first || input;
      } else {
        $("submit-error").textContent = `${problem.field}: ${problem.message}`;
      }
    }
    if (first) first.focus();
    return;
  }
  $("submit-error").textContent = (data && (data.detail || data.message)) || `The API answered ${status}.`;
}

// ---- the list, refreshed every two seconds while the page is visible

function listPath(cursor) {
  const task = $("filter-task").value;
  const query = new URLSearchParams();
  for (const box of document.querySelectorAll("#filters input[name=status]:checked")) query.append("status", box.value);
  if (cursor) query.set("cursor", cursor);
  const path = task ? encodeURIComponent(task) : "tasks";
  return query.toString() ? `${path}?${query}` : path;
}

async function refresh() {
  if (state.loading) return;
  state.loading = true;
  try {
    const { status, data } = await api("GET", listPath(null));
    if (status === 200) {
      state.items = data.items;
      // Pages added with "Show more" stay, and so does where they stopped; the first page is read afresh.
      const fresh = new Set(data.items.map((item) => item.task_id));
      state.extra = state.extra.filter((item) => !fresh.has(item.task_id));
      if (!state.extra.length) state.cursor = data.next_cursor;
      render();
      notice("");
    } else if (status >= 400 && status !== 401 && status !== 403) {
      notice((data && data.detail) || `The API answered ${status}.`);
    }
  } finally {
    state.loading = false;
  }
  if (state.selected) showDetail(state.selected.task, state.selected.id, false);
}

async function more() {
  if (!state.cursor) return;
  const { status, data } = await api("GET", listPath(state.cursor));
  if (status === 200) {
    state.extra = state.extra.concat(data.items);
    state.cursor = data.next_cursor;
    render();
  }
}

function render() {
  const shown = state.items.concat(state.extra);
  $("tasks").tBodies[0].replaceChildren(...shown.map(row));
  $("empty").hidden = shown.length > 0;
  $("more").hidden = !state.cursor;
}

function row(item) {
  const tr = element("tr", undefined, { "data-task-id": item.task_id, "data-status": item.status });
  tr.append(element("td", item.task));
  const idCell = element("td", undefined, { class: "id" });
  const open = element("button", item.task_id.slice(0, 8), { type: "button", "aria-label": `Details of ${item.task} ${item.task_id}` });
  open.addEventListener("click", () => showDetail(item.task, item.task_id, true));
  idCell.append(open);
  tr.append(idCell);
  tr.append(element("td", item.status, { class: `status status-${item.status}` }));
  const progressCell = element("td");
  const fraction = item.status === "succeeded" ? 1 : Number(item.progress || 0);
  const bar = element("progress", undefined, { max: "1", value: String(fraction), "aria-label": `${item.task} ${item.task_id.slice(0, 8)} progress` });
  progressCell.append(bar, document.createTextNode(` ${Math.round(fraction * 100)}%`));
  tr.append(progressCell);
  tr.append(element("td", new Date(item.created_at).toLocaleString(), { class: "created" }));
  const actions = element("td");
  if (item.status === "queued" || item.status === "running") {
    const cancel = element("button", "Cancel", { type: "button", class: "secondary", "aria-label": `Cancel ${item.task} ${item.task_id}` });
    cancel.addEventListener("click", async () => {
      cancel.disabled = true;
      const { status, data } = await api("DELETE", `${encodeURIComponent(item.task)}/${item.task_id}`);
      if (status !== 200) notice((data && data.detail) || `Cancelling answered ${status}.`);
      await refresh();
    });
    actions.append(cancel);
  }
  tr.append(actions);
  return tr;
}

// ---- one task: its fields, its input, its result or error

async function showDetail(task, id, focus) {
  state.selected = { task, id };
  const path = `${encodeURIComponent(task)}/${id}`;
  const [shown, given] = await Promise.all([api("GET", path), input(path, id)]);
  if (shown.status !== 200 && shown.status !== 202) return;
  const record = shown.data;
  const section = $("detail");
  section.hidden = false;
  $("detail-heading").textContent = `${record.task} ${record.task_id}`;
  const fields = $("detail-fields");
  fields.replaceChildren();
  for (const key of ["status", "progress", "attempts", "created_at", "started_at", "finished_at"]) {
    if (record[key] === undefined || record[key] === null) continue;
    fields.append(element("dt", key.replace("_", " ")), element("dd", record[key]));
  }
  showInput(given);
  let heading = "Result";
  let outcome = "";
  if (record.status === "succeeded") outcome = "result" in record ? JSON.stringify(record.result, null, 2) : `${record.result_bytes} bytes: open ${path}/result`;
  else if (record.status === "failed") { heading = "Error"; outcome = `${record.error.type}: ${record.error.message}`; }
  else outcome = `(${record.status})`;
  $("detail-outcome-heading").textContent = heading;
  $("detail-outcome").textContent = outcome;
  if (focus) $("detail-heading").focus();
}

// A task's input never changes: asked for once (and an input kept apart again when its link is about to expire). With
// redirect=false the API answers {"input"} or, for an input kept in the payload bucket, {"input_url"}: the 303 it gives
// otherwise is of no use to fetch (with redirect "manual" an opaque redirect, status 0; followed, a link to S3's
// origin, which this page's Content-Security-Policy and S3's CORS rules keep its script from reading).
async function input(path, id) {
  const known = state.inputs[id];
  if (known && (!known.given.data || !known.given.data.input_url || Date.now() - known.at < INPUT_LINK_MS)) return known.given;
  const given = await api("GET", `${path}/input?redirect=false`);
  if (given.status === 200) state.inputs[id] = { at: Date.now(), given };
  return given;
}

function showInput(given) {
  const pane = $("detail-input");
  const data = given.status === 200 ? given.data : null;
  if (!data) {
    pane.textContent = given.status ? `The input could not be read (${given.status}).` : "";
    return;
  }
  if ("input" in data) {
    pane.textContent = JSON.stringify(data.input, null, 2);
    return;
  }
  // A link the API presigned: https (or the local stack's http), never a script's URL.
  const url = new URL(String(data.input_url), window.location.href);
  const size = Number.isInteger(data.input_bytes) ? `, ${data.input_bytes.toLocaleString()} bytes` : "";
  const text = document.createTextNode(`Kept in the payload bucket${size}: `);
  if (url.protocol !== "https:" && url.protocol !== "http:") {
    pane.replaceChildren(text, document.createTextNode("(no link)"));
    return;
  }
  const link = element("a", "download it", { href: url.href, target: "_blank", rel: "noopener noreferrer", id: "detail-input-link" });
  pane.replaceChildren(text, link, document.createTextNode(" (the link is valid 15 minutes)."));
}

// ---- wiring

function schedule() {
  clearTimeout(state.timer);
  if (state.iamOnly) return;
  state.timer = setTimeout(async () => {
    if (document.visibilityState === "visible") await refresh();
    schedule();
  }, REFRESH_MS);
}

async function start() {
  takeTokenFromFragment();
  if (await loadDocument()) await refresh();
  schedule();
}

document.addEventListener("DOMContentLoaded", () => {
  $("auth").addEventListener("submit", async (event) => {
    event.preventDefault();
    const value = $("token").value.trim();
    if (value) sessionStorage.setItem(TOKEN_KEY, value);
    $("token").value = "";
    state.iamOnly = false;
    if (await loadDocument()) await refresh();
    schedule();
  });
  $("forget").addEventListener("click", () => { sessionStorage.removeItem(TOKEN_KEY); notice("Token forgotten."); });
  $("filters").addEventListener("change", () => {
    state.extra = [];
    state.cursor = null;
    refresh();
  });
  $("submit-task").addEventListener("change", buildForm);
  $("submit").addEventListener("submit", submitTask);
  $("more").addEventListener("click", more);
  start();
});
