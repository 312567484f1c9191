// oid serve's chat page. Model output is untrusted: it reaches the DOM only through textContent, or through
// renderMarkdown (shared.js), which escapes first. Answers stream from /v1/chat/completions (server-sent events).
"use strict";

const state = { model: null, messages: [], controller: null };

function settings() {
  const form = $("#settings");
  const value = (name) => form.querySelector(`[name=${name}]`).value;
  const body = { temperature: Number(value("temperature")), max_tokens: Number(value("max_tokens")) };
  const stop = value("stop").split("\n").filter((s) => s !== "");
  if (stop.length) body.stop = stop;
  if (value("seed") !== "") body.seed = Number(value("seed"));
  const system = value("system").trim();
  return { body, system };
}

function setContent(node, text) {
  node.innerHTML = renderMarkdown(text);  // escaped inside renderMarkdown
}

function render() {
  const box = $("#messages");
  if (!state.messages.length) return box.replaceChildren(el("p", { class: "empty", text: "Ask the model something." }));
  const last = state.messages.length - 1;
  box.replaceChildren(...state.messages.map((m, i) => {
    const content = el("div", { class: "content" });
    setContent(content, m.content);
    const tools = m.role === "assistant" && !m.streaming ? el("div", { class: "turn-tools" },
      el("button", { type: "button", class: "copy", text: "Copy", onclick: () => copy(m.content) }),
      i === last ? el("button", { type: "button", class: "regenerate", text: "Regenerate", onclick: regenerate }) : null) : null;
    return el("div", { class: `turn ${m.role}${m.streaming ? " streaming" : ""}${m.error ? " error" : ""}` },
      el("div", { class: "role", text: m.role }), content, tools);
  }));
  box.scrollTop = box.scrollHeight;
}

async function copy(text) {
  try { await navigator.clipboard.writeText(text); } catch {  // no clipboard permission: select and copy
    const area = el("textarea");
    area.value = text;
    document.body.append(area);
    area.select();
    document.execCommand("copy");
    area.remove();
  }
  toast("copied");
}

function setBusy(busy) {
  $("#send").hidden = busy;
  $("#stop").hidden = !busy;
}

// The answer to the conversation so far, streamed into a new assistant turn.
async function answer() {
  const { body, system } = settings();
  const history = state.messages.filter((m) => !m.error).map(({ role, content }) => ({ role, content }));
  const turn = { role: "assistant", content: "", streaming: true };
  state.messages.push(turn);
  render();
  state.controller = new AbortController();
  setBusy(true);
  try {
    const response = await fetch("/v1/chat/completions", {
      method: "POST", headers: { "Content-Type": "application/json" }, signal: state.controller.signal,
      body: JSON.stringify({ ...body, model: state.model, stream: true,
        messages: system ? [{ role: "system", content: system }, ...history] : history }),
    });
    if (!response.ok) {
      const data = await response.json().catch(() => ({}));
      throw new Error((data.error && data.error.message) || `the server answered ${response.status}`);
    }
    const reader = response.body.getReader(), decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      const events = buffer.split("\n\n");
      buffer = events.pop();
      for (const event of events) {
        const data = event.replace(/^data: /, "");
        if (data === "[DONE]") continue;
        const parsed = JSON.parse(data);
        if (parsed.error) throw new Error(parsed.error.message);
        const delta = parsed.choices.length ? parsed.choices[0].delta : {};
        if (delta.content) {
          turn.content += delta.content;
          setContent(document.querySelector("#messages .turn.streaming .content"), turn.content);
          $("#messages").scrollTop = $("#messages").scrollHeight;
        }
      }
    }
  } catch (error) {
    if (error.name !== "AbortError") { turn.error = true; turn.content += `\n\n${error.message}`; }
  } finally {
    turn.streaming = false;
    state.controller = null;
    setBusy(false);
    render();
  }
}

function send(text) {
  if (!text.trim() || state.controller) return;
  state.messages.push({ role: "user", content: text });
  $("#ask-form textarea").value = "";
  answer();
}

function regenerate() {
  if (state.controller) return;
  while (state.messages.length && state.messages[state.messages.length - 1].role === "assistant") state.messages.pop();
  if (state.messages.length) answer();
}

async function start() {
  const { data } = await api("/v1/models");
  state.model = data.data[0].id;
  $("#model-name").textContent = state.model;
  const form = $("#ask-form"), text = form.elements.text;
  form.addEventListener("submit", (event) => { event.preventDefault(); send(text.value); });
  text.addEventListener("keydown", (event) => {
    // isComposing: Enter that confirms a Chinese/Japanese input-method candidate must not send
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) { event.preventDefault(); send(text.value); }
  });
  $("#stop").addEventListener("click", () => state.controller && state.controller.abort());
  $("#new-chat").addEventListener("click", () => { if (state.controller) state.controller.abort(); state.messages = []; render(); });
  text.focus();
}

start().catch((error) => toast(String(error), "error"));
