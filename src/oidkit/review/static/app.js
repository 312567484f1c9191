// oid review page. Record text is untrusted: it reaches the DOM only through textContent, or through
// renderMarkdown (shared.js), which escapes everything first and only then adds a few tags of its own.
"use strict";

const PAGE = 50;
const state = {
  meta: null, view: "data", filters: {}, offset: 0, total: 0, rows: [], cursor: -1,
  item: null, editing: false, keys: Promise.resolve(), annotator: localStorage.getItem("oid-review-annotator") || "",
};

// Page changes and key actions run one after another, in the order the user asked for them.
function queue(work) {
  state.keys = state.keys.then(work).catch((error) => toast(String(error), "error"));
  return state.keys;
}

// ---- list ------------------------------------------------------------------------------------------

function queryString() {
  const params = new URLSearchParams({ view: state.view, offset: state.offset, limit: PAGE, annotator: state.annotator });
  for (const [name, value] of Object.entries(state.filters)) if (value !== "" && value != null) params.set(name, value);
  return params.toString();
}

async function loadList(select = 0) {
  const { status, data } = await api(`/api/records?${queryString()}`);
  if (status !== 200) return toast(detailText(data), "error");
  state.total = data.total; state.rows = data.items;
  $("#page-info").textContent = data.total ? `${state.offset + 1}–${state.offset + data.items.length} of ${data.total.toLocaleString()}` : "no records match";
  const rows = $("#rows");
  rows.replaceChildren(...data.items.map((row, i) => listRow(row, i)));
  state.cursor = -1;
  if (data.items.length) await openRow(select === "last" ? data.items.length - 1 : select);
  else $("#detail").replaceChildren(el("p", { class: "empty", text: "No records match these filters." }));
}

function listRow(row, i) {
  const badges = el("span", { class: "badges" });
  if (row.status) badges.append(el("span", { class: `badge ${row.status}`, text: row.status === "accept" ? "accepted" : "rejected" }));
  if (row.edited) badges.append(el("span", { class: "badge edited", text: "edited" }));
  for (const label of row.labels) badges.append(el("span", { class: "badge label", text: label }));
  if (row.reason) badges.append(el("span", { class: "badge reason", text: `${row.operator}: ${row.reason}` }));
  const facts = [`${row.turns} turns`, `${row.chars.toLocaleString()} chars`];
  if (row.score !== undefined) facts.push(`score ${row.score}`);
  if (row.lang) facts.push(row.lang);
  return el("li", { class: "row", "data-key": row.key, onclick: () => queue(() => openRow(i)) },
    el("div", { class: "preview", text: row.preview || "(no user turn)" }),
    el("div", { class: "facts" }, el("span", { text: facts.join(" · ") }), badges));
}

async function openRow(i) {
  if (i < 0 || i >= state.rows.length) return;
  state.cursor = i;
  document.querySelectorAll("#rows .row").forEach((node, j) => node.classList.toggle("current", j === i));
  document.querySelectorAll("#rows .row")[i].scrollIntoView({ block: "nearest" });
  await loadItem(state.rows[i].key);
}

async function move(step) {
  const next = state.cursor + step;
  if (next >= 0 && next < state.rows.length) return openRow(next);
  if (step > 0 && state.offset + PAGE < state.total) { state.offset += PAGE; return loadList(0); }
  if (step < 0 && state.offset > 0) { state.offset = Math.max(0, state.offset - PAGE); return loadList("last"); }
}

async function page(step) {
  const offset = state.offset + step * PAGE;
  if (offset < 0 || offset >= state.total) return;
  state.offset = offset;
  await loadList(0);
}

// ---- one record ------------------------------------------------------------------------------------

async function loadItem(key) {
  const { status, data } = await api(`/api/item?key=${encodeURIComponent(key)}`);
  if (status !== 200) return toast(detailText(data), "error");
  state.item = data; state.editing = false;
  renderItem();
}

function myDecision() {
  return (state.item.decisions[state.annotator] || {}).decision || null;
}

function renderItem() {
  const item = state.item, record = item.record;
  const pane = el("div", { class: "item" });
  const source = record ? (record.source || {}) : (item.reject.source || {});
  const where = [source.file && source.file.split("/").pop(), source.line != null && `line ${source.line}`, source.format].filter(Boolean).join(" · ");
  const decision = myDecision();
  pane.append(el("div", { class: "item-head" },
    el("span", { class: "key", text: item.key }), el("span", { class: "where", text: where }),
    el("span", { class: "version", text: item.version ? `version ${item.version} (edited by ${item.edited_by})` : "original" })));
  const actions = el("div", { class: "actions" },
    el("button", { class: `accept ${decision === "accept" ? "on" : ""}`, onclick: () => decide("accept"), text: "Accept (a)" }),
    el("button", { class: `reject ${decision === "reject" ? "on" : ""}`, onclick: askReason, text: "Reject (r)" }),
    el("button", { onclick: () => decide(null), text: "Clear (u)" }),
    record ? el("button", { onclick: startEdit, text: "Edit (e)" }) : null);
  pane.append(actions);
  const mine = new Set((item.labels[state.annotator] || []));
  pane.append(el("div", { class: "labels" }, ...state.meta.labels.map((label, i) => el("button", {
    class: `label ${mine.has(label) ? "on" : ""}`, onclick: () => toggleLabel(i), text: `${i < 9 ? i + 1 + " " : ""}${label}`,
  }))));
  const others = Object.entries(item.decisions).filter(([name, d]) => name !== state.annotator && d.decision);
  if (others.length) pane.append(el("p", { class: "others", text: "Others: " + others.map(([name, d]) => `${name} ${d.decision}${d.reason ? ` (${d.reason})` : ""}`).join(", ") }));
  if (decision === "reject" && item.decisions[state.annotator].reason) pane.append(el("p", { class: "my-reason", text: `Your reason: ${item.decisions[state.annotator].reason}` }));
  if (item.reject) {
    const r = item.reject;
    pane.append(el("p", { class: "reject-info", text: `Rejected by ${r.stage || "?"}/${r.operator || "?"}: ${r.reason || "?"}${r.detail ? ` — ${r.detail}` : ""}${r.value != null ? ` (value ${typeof r.value === "object" ? JSON.stringify(r.value) : r.value})` : ""}` }));
  }
  if (!record) pane.append(el("pre", { class: "raw", text: JSON.stringify(item.reject.raw, null, 2) }));
  else if (item.duplicate) {
    pane.append(el("div", { class: "side-by-side" },
      el("div", {}, el("h3", { text: "This rejected record" }), turns(record.messages)),
      el("div", {}, el("h3", { text: `Kept record it duplicates: ${item.duplicate.key}` }), turns(item.duplicate.record.messages))));
  } else pane.append(turns(record.messages));
  $("#detail").replaceChildren(pane);
}

function askReason() {
  const input = el("input", { class: "reason", placeholder: "reason for rejecting, Enter to save, Esc to cancel" });
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter") { event.preventDefault(); decide("reject", input.value); }
    if (event.key === "Escape") renderItem();
  });
  $("#detail .actions").after(input);
  input.focus();
}

async function decide(decision, reason = "") {
  const { status, data } = await api("/api/decision", { key: state.item.key, annotator: state.annotator, decision, reason });
  if (status !== 200) return toast(detailText(data), "error");
  state.item.decisions[state.annotator] = data;
  const row = state.rows[state.cursor];
  if (row) { row.status = decision; document.querySelectorAll("#rows .row")[state.cursor].replaceWith(listRow(row, state.cursor)); }
  document.querySelectorAll("#rows .row").forEach((node, j) => node.classList.toggle("current", j === state.cursor));
  toast(decision ? `${decision === "accept" ? "accepted" : "rejected"} — saved` : "decision cleared");
  renderItem();
}

async function toggleLabel(i) {
  const label = state.meta.labels[i];
  if (label === undefined) return;
  const mine = new Set(state.item.labels[state.annotator] || []);
  if (mine.has(label)) mine.delete(label); else mine.add(label);
  const { status, data } = await api("/api/labels", { key: state.item.key, annotator: state.annotator, labels: [...mine] });
  if (status !== 200) return toast(detailText(data), "error");
  state.item.labels[state.annotator] = data.labels;
  const row = state.rows[state.cursor];
  if (row) { row.labels = data.labels; document.querySelectorAll("#rows .row")[state.cursor].replaceWith(listRow(row, state.cursor)); }
  document.querySelectorAll("#rows .row").forEach((node, j) => node.classList.toggle("current", j === state.cursor));
  renderItem();
}

// ---- editing and conflicts -------------------------------------------------------------------------

function startEdit() {
  if (!state.item.record) return;
  state.editing = true;
  const form = el("form", { class: "editor" });
  state.item.record.messages.forEach((m, i) => {
    const role = el("select", { name: `role-${i}` }, ...["system", "user", "assistant", "tool"].map((r) => el("option", { value: r, text: r })));
    role.value = m.role;
    const text = el("textarea", { name: `content-${i}`, rows: Math.min(16, String(m.content ?? "").split("\n").length + 1) });
    text.value = String(m.content ?? "");
    form.append(el("div", { class: `turn ${m.role}` }, role, text));
  });
  form.append(el("div", { class: "actions" }, el("button", { type: "submit", text: "Save (Ctrl+Enter)" }),
    el("button", { type: "button", onclick: () => { state.editing = false; renderItem(); }, text: "Cancel (Esc)" })));
  form.addEventListener("submit", (event) => { event.preventDefault(); saveEdit(editedMessages(form), state.item.version); });
  form.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) { event.preventDefault(); form.requestSubmit(); }
    if (event.key === "Escape") { event.preventDefault(); state.editing = false; renderItem(); }
  });
  $("#detail .chat, #detail .side-by-side").replaceWith(form);
  form.querySelector("textarea").focus();
}

function editedMessages(form) {
  // Keep every other key of a turn (tool_calls, name, source_role): only role and content are edited here.
  return state.item.record.messages.map((m, i) => ({ ...m, role: form.elements[`role-${i}`].value, content: form.elements[`content-${i}`].value }));
}

async function saveEdit(messages, base) {
  const { status, data } = await api("/api/edit", { key: state.item.key, annotator: state.annotator, base, messages });
  if (status === 409) return showConflict(data);
  if (status !== 200) return toast(detailText(data), "error");
  toast(`saved as version ${data.seq}`);
  await loadItem(state.item.key);
}

function showConflict(data) {
  const dialog = $("#conflict-dialog");
  $("#conflict-info").textContent = data.detail;
  $("#conflict-theirs").replaceChildren(turns(data.current.messages));
  $("#conflict-yours").replaceChildren(turns(data.yours.messages));
  $("#conflict-keep-theirs").onclick = async () => { dialog.close(); await loadItem(state.item.key); toast("kept their version"); };
  $("#conflict-keep-mine").onclick = async () => { dialog.close(); await saveEdit(data.yours.messages, data.current.version); };
  dialog.showModal();
}

// ---- progress, filters, annotator, keyboard --------------------------------------------------------

async function showProgress() {
  const { data } = await api(`/api/progress?sample=${state.filters.sample ? "true" : "false"}`);
  const body = $("#progress-body");
  body.replaceChildren(
    data.progress.length === 0 ? el("p", { class: "empty", text: "No decisions yet." }) :
    table(["annotator", "decided", "of", "accepted", "rejected", "labelled", "edited", "accept rate 95% CI"],
      data.progress.map((p) => [p.annotator, p.decided, p.total, p.accepted, p.rejected, p.labelled, p.edited,
        `${(p.accept_rate_95[0] * 100).toFixed(1)}–${(p.accept_rate_95[1] * 100).toFixed(1)}%`])),
    el("h3", { text: "Agreement (records both annotators decided or labelled)" }),
    data.agreement.length === 0 ? el("p", { class: "empty", text: "Agreement needs two annotators: none yet." }) :
    table(["annotators", "on", "n", "percent", "Cohen's kappa"], data.agreement.flatMap((pair) => [
      [pair.annotators.join(" & "), "accept/reject", pair.decisions.n, pair.decisions.percent, pair.decisions.kappa],
      ...Object.entries(pair.labels).map(([label, a]) => [pair.annotators.join(" & "), `label ${label}`, a.n, a.percent, a.kappa]),
    ])));
  $("#progress-dialog").showModal();
}

function fillSelect(name, values) {
  const select = document.querySelector(`#filter-form [name=${name}]`);
  select.replaceChildren(el("option", { value: "", text: "any" }), ...values.map((v) => el("option", { value: v, text: v })));
}

async function loadMeta() {
  const { status, data } = await api("/api/meta");
  if (status !== 200) { toast(detailText(data), "error"); return false; }
  state.meta = data;
  $("#count-data").textContent = data.counts.data.toLocaleString();
  $("#count-reject").textContent = data.counts.reject.toLocaleString();
  fillSelect("source", data.sources); fillSelect("label", data.labels);
  fillSelect("operator", data.operators); fillSelect("reason", data.reasons);
  if (data.languages) fillSelect("lang", data.languages);
  else { fillSelect("lang", []); document.querySelector("#filter-form [name=lang] option").textContent = "any (identifying…)"; setTimeout(refreshLanguages, 3000); }
  $("#filter-form .check").hidden = !data.sample;
  return true;
}

async function refreshLanguages() {
  const { data } = await api("/api/meta");
  if (data.languages) fillSelect("lang", data.languages); else setTimeout(refreshLanguages, 3000);
}

function readFilters() {
  const form = $("#filter-form");
  const filters = {};
  for (const [name, value] of new FormData(form).entries()) if (value !== "") filters[name] = name === "sample" ? "true" : value;
  return filters;
}

function setView(view) {
  state.view = view; state.offset = 0;
  document.querySelectorAll("#views button").forEach((b) => b.classList.toggle("active", b.dataset.view === view));
  document.body.classList.toggle("rejects", view === "reject");
  queue(() => loadList(0));
}

function setAnnotator(name) {
  state.annotator = name.trim();
  localStorage.setItem("oid-review-annotator", state.annotator);
  $("#annotator-name").textContent = state.annotator;
}

function askAnnotator() {
  const dialog = $("#annotator-dialog");
  dialog.querySelector("input").value = state.annotator;
  dialog.showModal();
  return new Promise((resolve) => {
    const closed = () => {
      const name = dialog.querySelector("input").value.trim() || state.annotator;
      if (!name) { dialog.showModal(); return; }  // every decision needs a name: ask until given
      dialog.removeEventListener("close", closed);
      setAnnotator(name); resolve();
    };
    dialog.addEventListener("close", closed);
  });
}

function onKey(event) {
  if (document.querySelector("dialog[open]") || event.ctrlKey || event.metaKey || event.altKey) return;
  if (event.target.closest("input, textarea, select")) return;
  const actions = {
    j: () => move(1), k: () => move(-1), n: () => page(1), p: () => page(-1),
    a: () => decide("accept"), r: askReason, u: () => decide(null), e: startEdit,
    "/": () => $("#filter-form [name=q]").focus(),
  };
  const action = actions[event.key] || (/^[1-9]$/.test(event.key) ? () => toggleLabel(Number(event.key) - 1) : null);
  if (action && !(state.editing && event.key !== "/")) {
    event.preventDefault();
    // Run keys one after another: "j j e" typed fast edits the record the two j's landed on.
    const needsItem = !"jknp/".includes(event.key);
    queue(() => (state.editing || (needsItem && !state.item) ? null : action()));
  }
}

async function start() {
  if (!(await loadMeta())) return;
  if (state.meta.annotator) setAnnotator(state.meta.annotator);  // --annotator wins over the remembered name
  else if (state.annotator) setAnnotator(state.annotator);
  else await askAnnotator();
  $("#filter-form").addEventListener("submit", (event) => { event.preventDefault(); state.filters = readFilters(); state.offset = 0; queue(() => loadList(0)); });
  $("#filter-form").addEventListener("reset", () => { state.filters = {}; state.offset = 0; queue(() => loadList(0)); });
  document.querySelectorAll("#views button").forEach((b) => b.addEventListener("click", () => setView(b.dataset.view)));
  $("#prev-page").addEventListener("click", () => queue(() => page(-1)));
  $("#next-page").addEventListener("click", () => queue(() => page(1)));
  $("#annotator-button").addEventListener("click", () => askAnnotator().then(() => queue(() => loadList(0))));
  $("#progress-button").addEventListener("click", showProgress);
  document.addEventListener("keydown", onKey);
  await queue(() => loadList(0));
}

start();
