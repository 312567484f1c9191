// oid arena page. Prompts and answers are untrusted: they reach the DOM only through textContent, or
// through renderMarkdown (shared.js), which escapes first. Model names arrive only in the vote's answer.
"use strict";

const CHOICES = { 1: "A", 2: "B", 3: "tie", 4: "both_bad" };
const state = { annotator: localStorage.getItem("oid-arena-annotator") || "", item: null, voted: false, busy: false };

function setBusy(busy, message) {
  state.busy = busy;
  document.querySelectorAll("#vote-bar .actions button").forEach((b) => { b.disabled = busy || state.voted || !state.item; });
  if (busy && message) $("#prompt").replaceChildren(el("p", { class: "empty", text: message }));
}

function showItem(item) {
  state.item = item;
  state.voted = false;
  $("#prompt").replaceChildren(turns(item.prompt));
  ["a", "b"].forEach((side, i) => {
    const box = $(`#answer-${side}`);
    box.classList.remove("won");
    const body = box.querySelector(".body");
    if (item.answers[i]) body.innerHTML = renderMarkdown(item.answers[i]);  // escaped inside renderMarkdown
    else body.replaceChildren(el("p", { class: "empty", text: "(empty answer)" }));
    box.querySelector(".model-name").textContent = "";
  });
  document.querySelectorAll("#vote-bar .actions button").forEach((b) => b.classList.remove("on"));
  $("#note").value = "";
  $("#next-button").hidden = true;
  $("#progress-info").textContent = (item.position ? `prompt ${item.position} of ${item.total}` : "your prompt")
    + ` · your votes ${item.voted}`;
}

function showDone(total) {
  state.item = null;
  $("#prompt").replaceChildren(el("p", { class: "empty", text: total
    ? `You voted on all ${total} prompts. Type your own prompt above, or see the results.`
    : "No prompt file was given: type a prompt above." }));
  document.querySelectorAll(".answer .body, .answer .model-name").forEach((node) => { node.textContent = ""; });
  $("#next-button").hidden = true;
}

async function loadNext(after = "") {
  setBusy(true, "Both models are answering…");
  try {
    const params = new URLSearchParams({ annotator: state.annotator, after });
    const { status, data } = await api(`/api/next?${params}`);
    if (status !== 200) return toast(detailText(data), "error");
    if (data.done) showDone(data.total); else showItem(data);
  } finally { setBusy(false); }
}

async function askTyped(text) {
  if (!text.trim() || state.busy) return;
  setBusy(true, "Both models are answering…");
  try {
    const { status, data } = await api("/api/prompt", { annotator: state.annotator, text });
    if (status !== 200) return toast(detailText(data), "error");
    showItem(data);
    $("#typed-form textarea").value = "";
  } finally { setBusy(false); }
}

async function vote(choice) {
  if (!state.item || state.voted || state.busy) return;
  const { status, data } = await api("/api/vote", { key: state.item.key, annotator: state.annotator, choice, note: $("#note").value });
  if (status !== 200) return toast(detailText(data), "error");
  state.voted = true;
  ["a", "b"].forEach((side, i) => {
    $(`#answer-${side} .model-name`).textContent = data.models[i];
    $(`#answer-${side}`).classList.toggle("won", choice === "AB"[i]);
  });
  document.querySelectorAll("#vote-bar .actions button").forEach((b) => { b.classList.toggle("on", b.dataset.choice === choice); b.disabled = true; });
  $("#next-button").hidden = false;
  $("#progress-info").textContent = $("#progress-info").textContent.replace(/your votes \d+/, `your votes ${state.item.voted + 1}`);
  toast(`vote saved (#${data.seq})`);
}

async function showResults() {
  const { data } = await api("/api/results");
  const body = [el("p", { text: `${data.votes} votes in ${data.log}` })];
  for (const pair of data.pairs) {
    body.push(el("h3", { text: `${pair.models[0]} vs ${pair.models[1]}: ${pair.votes} votes` }));
    body.push(table(["model", "wins", "win rate", "95% interval"], pair.results.map((r) => [
      r.model, r.wins, `${(100 * r.win_rate).toFixed(1)}%`, `${(100 * r.win_rate_95[0]).toFixed(1)}–${(100 * r.win_rate_95[1]).toFixed(1)}%`])));
    body.push(el("p", { text: `tie ${pair.ties}, both bad ${pair.both_bad}` }));
  }
  if (data.agreement.length) {
    body.push(el("h3", { text: "Agreement between annotators" }));
    body.push(table(["annotators", "shared prompts", "agreement", "kappa"], data.agreement.map((a) => [
      a.annotators.join(" / "), a.n, a.percent == null ? null : `${(100 * a.percent).toFixed(1)}%`, a.kappa])));
  }
  $("#results-body").replaceChildren(...body);
  $("#results-dialog").showModal();
}

function askAnnotator() {
  const dialog = $("#annotator-dialog");
  dialog.querySelector("input").value = state.annotator;
  dialog.showModal();
  return new Promise((resolve) => dialog.addEventListener("close", () => {
    const name = dialog.querySelector("input").value.trim();
    if (name) { state.annotator = name; localStorage.setItem("oid-arena-annotator", name); }
    $("#annotator-name").textContent = state.annotator || "?";
    resolve();
  }, { once: true }));
}

function onKey(event) {
  if (event.target.closest("input, textarea") || document.querySelector("dialog[open]")) return;
  if (CHOICES[event.key]) vote(CHOICES[event.key]);
  else if (event.key === "n" && state.voted) loadNext(state.item.key);
}

async function start() {
  const { data: meta } = await api("/api/meta");
  if (!state.annotator && meta.annotator) state.annotator = meta.annotator;
  $("#annotator-name").textContent = state.annotator || "?";
  if (!state.annotator) await askAnnotator();
  document.querySelectorAll("#vote-bar .actions button").forEach((b) => b.addEventListener("click", () => vote(b.dataset.choice)));
  $("#next-button").addEventListener("click", () => loadNext(state.item ? state.item.key : ""));
  $("#results-button").addEventListener("click", showResults);
  $("#annotator-button").addEventListener("click", async () => { await askAnnotator(); loadNext(); });
  const typed = $("#typed-form");
  typed.addEventListener("submit", (event) => { event.preventDefault(); askTyped(typed.elements.text.value); });
  typed.elements.text.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) { event.preventDefault(); askTyped(typed.elements.text.value); }
  });
  document.addEventListener("keydown", onKey);
  await loadNext();
}

start().catch((error) => toast(String(error), "error"));
