// Helpers shared by the oidkit pages (review, arena, chat): DOM building, escape-first Markdown, JSON calls.
// Untrusted text reaches the DOM only through textContent, or through renderMarkdown, which escapes
// everything first and only then adds a few tags of its own. Loaded before each page's own script.
"use strict";

const $ = (selector) => document.querySelector(selector);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (name === "text") node.textContent = value;
    else if (name === "class") node.className = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value);
  }
  for (const child of children) if (child != null) node.append(child);
  return node;
}

// ---- safe Markdown subset: code blocks, inline code, bold, italics, lists ------------------------

function escapeHtml(text) {
  return text.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

function inline(line) {
  // Split on backticks first so bold/italics never apply inside code; every piece is escaped.
  return line.split("`").map((piece, i) => {
    const safe = escapeHtml(piece);
    if (i % 2 === 1) return `<code>${safe}</code>`;
    return safe.replace(/\*\*([^*]+)\*\*/g, "<strong>$1</strong>").replace(/(^|[^*\w])\*([^*\s][^*]*)\*/g, "$1<em>$2</em>");
  }).join("");
}

function renderMarkdown(text) {
  const out = [];
  let code = null, list = null, paragraph = [];
  const flushParagraph = () => { if (paragraph.length) out.push(`<p>${paragraph.map(inline).join("<br>")}</p>`); paragraph = []; };
  const flushList = () => { if (list) out.push(`<${list.tag}>${list.items.map((i) => `<li>${inline(i)}</li>`).join("")}</${list.tag}>`); list = null; };
  for (const line of text.split("\n")) {
    if (code !== null) {
      if (/^\s*```/.test(line)) { out.push(`<pre><code>${escapeHtml(code.join("\n"))}</code></pre>`); code = null; }
      else code.push(line);
      continue;
    }
    if (/^\s*```/.test(line)) { flushParagraph(); flushList(); code = []; continue; }
    const bullet = line.match(/^\s*[-*+]\s+(.*)$/), numbered = line.match(/^\s*\d+[.)]\s+(.*)$/);
    if (bullet || numbered) {
      flushParagraph();
      const tag = bullet ? "ul" : "ol";
      if (!list || list.tag !== tag) { flushList(); list = { tag, items: [] }; }
      list.items.push((bullet || numbered)[1]);
      continue;
    }
    flushList();
    if (!line.trim()) flushParagraph(); else paragraph.push(line);
  }
  if (code !== null) out.push(`<pre><code>${escapeHtml(code.join("\n"))}</code></pre>`);
  flushParagraph(); flushList();
  return out.join("");
}

// A conversation as turns, each rendered with renderMarkdown (tool calls shown as JSON text).
function turns(messages) {
  return el("div", { class: "chat" }, ...messages.map((m) => {
    const body = el("div", { class: "content" });
    body.innerHTML = renderMarkdown(String(m.content ?? ""));  // escaped inside renderMarkdown
    const calls = m.tool_calls ? el("pre", { class: "tool-calls", text: JSON.stringify(m.tool_calls, null, 2) }) : null;
    return el("div", { class: `turn ${m.role}` }, el("div", { class: "role", text: m.name ? `${m.role} · ${m.name}` : m.role }), body, calls);
  }));
}

function table(headers, rows) {
  return el("table", {}, el("thead", {}, el("tr", {}, ...headers.map((h) => el("th", { text: h })))),
    el("tbody", {}, ...rows.map((cells) => el("tr", {}, ...cells.map((c) => el("td", { text: c == null ? "–" : String(c) }))))));
}

// ---- server calls ----------------------------------------------------------------------------------

async function api(path, body) {
  const options = body === undefined ? {} : { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) };
  const response = await fetch(path, options);
  const data = await response.json().catch(() => ({}));
  return { status: response.status, data };
}

// A short message in the page's #toast box; errors stay longer.
function toast(message, kind = "info") {
  const box = $("#toast");
  box.textContent = message;
  box.className = `show ${kind}`;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { box.className = ""; }, kind === "error" ? 6000 : 1800);
}

function detailText(data) {
  return typeof data.detail === "string" ? data.detail : JSON.stringify(data.detail);
}
