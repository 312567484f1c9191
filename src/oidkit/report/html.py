"""The self-contained HTML page: inline CSS, figures as data: URIs, every text escaped (Jinja2 autoescape).

Nothing on the page points outside it: no scripts, no fonts, no stylesheets, no links but in-page anchors.
Record text is shown as escaped text inside ``<div class="msg">``, so a URL in a conversation stays words.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import orjson
from jinja2 import Environment
from markupsafe import Markup

MAX_MESSAGE_CHARS = 1500
MAX_VALUE_CHARS = 300
TOP_LANGUAGES = 15

TEMPLATE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>{{ title }}</title>
<style>
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0; color: #222; background: #fafafa; }
header { background: #1f3b57; color: #fff; padding: 18px 32px; }
header h1 { margin: 0 0 4px; font-size: 22px; }
header p { margin: 0; opacity: .85; }
nav { padding: 8px 32px; background: #e8edf2; position: sticky; top: 0; }
nav a { margin-right: 14px; color: #1f3b57; text-decoration: none; font-weight: 600; }
main { padding: 8px 32px 40px; max-width: 1100px; }
section { margin-top: 28px; }
h2 { border-bottom: 2px solid #1f3b57; padding-bottom: 4px; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; }
.card { background: #fff; border: 1px solid #d8dee4; border-radius: 6px; padding: 10px 14px; min-width: 130px; }
.card b { display: block; font-size: 20px; }
table { border-collapse: collapse; background: #fff; margin: 8px 0; }
th, td { border: 1px solid #d8dee4; padding: 4px 10px; text-align: right; }
th { background: #eef1f4; }
td.l, th.l { text-align: left; }
img { max-width: 100%; background: #fff; border: 1px solid #d8dee4; margin: 8px 0; }
.note { color: #555; font-size: 13px; }
details { background: #fff; border: 1px solid #d8dee4; border-radius: 6px; margin: 6px 0; padding: 6px 10px; }
summary { cursor: pointer; font-weight: 600; }
.msg { white-space: pre-wrap; word-break: break-word; border-left: 4px solid #ccc; padding: 4px 8px; margin: 6px 0;
       font-family: ui-monospace, monospace; font-size: 12.5px; }
.role-user { border-color: #4c72b0; } .role-assistant { border-color: #dd8452; }
.role-system { border-color: #55a868; } .role-tool, .role-raw { border-color: #8172b3; }
.role { font-weight: 700; font-family: system-ui, sans-serif; }
.reason { color: #b03030; font-weight: 600; }
</style>
</head>
<body>
<header>
<h1>{{ title }}</h1>
<p>{{ stats.overview.records | num }} records from {{ inputs | join(", ") }}; tokens counted with
{{ stats.tokenizer }}.</p>
</header>
<nav><a href="#overview">Overview</a><a href="#sources">Sources</a><a href="#languages">Languages</a>
<a href="#turns">Turns</a><a href="#tokens">Lengths</a><a href="#instructions">Instructions</a>
<a href="#funnel">Curation</a><a href="#samples">Samples</a></nav>
<main>
{% if stats.warnings %}<section>
{% for w in stats.warnings %}<p class="reason">warning: {{ w }}</p>{% endfor %}
</section>{% endif %}
<section id="overview"><h2>Overview</h2>
<div class="cards">
{% for label, value in overview_cards %}<div class="card"><b>{{ value | num }}</b>{{ label }}</div>
{% endfor %}</div></section>

<section id="sources"><h2>Sources</h2>
<table><tr><th class="l">file</th><th class="l">format</th><th>records</th><th>share</th><th>mean turns</th>
<th>median user tokens</th><th>median assistant tokens</th></tr>
{% for r in stats.sources %}<tr><td class="l">{{ r.file }}</td><td class="l">{{ r.format }}</td>
<td>{{ r.records | num }}</td><td>{{ r.share | pct }}</td><td>{{ r.turns_mean }}</td>
<td>{{ r.user_tokens_median }}</td><td>{{ r.assistant_tokens_median }}</td></tr>
{% endfor %}</table></section>

<section id="languages"><h2>Languages</h2>
<p class="note">meta.lang when curation set it, else py3langid on the first user turn (on all user turns
when the first is shorter than 40 characters).</p>
<table><tr><th class="l">language</th><th>records</th><th>share</th><th>mean turns</th><th>median user tokens</th>
<th>median assistant tokens</th></tr>
{% for r in stats.languages[:TOP_LANGUAGES] %}<tr><td class="l">{{ r.lang }}</td><td>{{ r.records | num }}</td>
<td>{{ r.share | pct }}</td><td>{{ r.turns_mean }}</td><td>{{ r.user_tokens_median }}</td>
<td>{{ r.assistant_tokens_median }}</td></tr>
{% endfor %}</table>
{% if stats.languages | length > TOP_LANGUAGES %}<details><summary>{{ stats.languages | length - TOP_LANGUAGES }}
more languages</summary><p>{% for r in stats.languages[TOP_LANGUAGES:] %}{{ r.lang }}: {{ r.records | num }}
{{- ", " if not loop.last }} {% endfor %}</p></details>{% endif %}
{{ figure("languages") }}</section>

<section id="turns"><h2>Turns per record</h2>
<p class="note">Turns are the messages other than system ones (user, assistant and tool).</p>
{{ figure("turns") }}
{{ summary_table([("turns", stats.turns.summary)]) }}</section>

<section id="tokens"><h2>Message lengths</h2>
<p class="note">{{ token_rule }}</p>
{{ figure("tokens") }}
{{ summary_table([("user", stats.tokens.user), ("assistant", stats.tokens.assistant)]) }}</section>

<section id="instructions"><h2>What the instructions ask</h2>
{% set en = stats.instructions.en %}
<p class="note">English: {{ en.with_verb | num }} of {{ en.records | num }} English first user turns open with a verb
from the lexicon ({{ en.distinct_verbs }} distinct verbs); see docs/report.md for the heuristic.</p>
{{ figure("verbs") }}
{% if en.top_verbs %}<table><tr><th class="l">verb</th><th>records</th><th class="l">commonest objects</th></tr>
{% for v in en.top_verbs %}<tr><td class="l">{{ v.verb }}</td><td>{{ v.count | num }}</td>
<td class="l">{% for o in v.objects %}{{ o.object }} ({{ o.count }}){{ ", " if not loop.last }}{% endfor %}</td></tr>
{% endfor %}</table>{% endif %}
{% set zh = stats.instructions.zh %}
{% if zh.top_first_words %}<h3>Chinese: first word of the instruction</h3>
<p class="note">{{ zh.records | num }} Chinese records; first jieba word after polite openers (请, 帮我, ...).</p>
<table><tr><th class="l">first word</th><th>records</th></tr>
{% for w in zh.top_first_words %}<tr><td class="l">{{ w.word }}</td><td>{{ w.count | num }}</td></tr>{% endfor %}
</table>{% endif %}</section>

<section id="funnel"><h2>Curation funnel</h2>
{% if stats.funnel %}{% set f = stats.funnel %}
<p class="note">{{ f.input | num }} records in, {{ f.output | num }} kept
{%- if f.from == "rejects" %} (rebuilt from the rejects file: no curation stats.json was given){% endif %}.</p>
{{ figure("funnel") }}
<table><tr><th class="l">step</th><th class="l">operator</th><th>in</th><th>out</th><th>dropped</th><th>modified</th>
<th class="l">reasons</th></tr>
{% for s in f.steps %}<tr><td class="l">{{ s.name }}</td><td class="l">{{ s.op }}</td><td>{{ s["in"] | num }}</td>
<td>{{ s.out | num }}</td><td>{{ s.dropped | num }}</td><td>{{ s.modified | num }}</td>
<td class="l">{% for code, n in (s.reasons or {}).items() %}{{ code }}: {{ n | num }}{{ ", " if not loop.last }}
{% endfor %}</td></tr>
{% endfor %}</table>
{% for s in f.steps %}{% for note in s.notes or [] %}<p class="reason">skipped in {{ s.name }}: {{ note }}</p>
{% endfor %}{% endfor %}
{% else %}<p class="note">No curation stats or rejects were given (use --stats / --rejects, or point
oid report at an `oid curate` output folder).</p>{% endif %}
{% if stats.rejects %}<h3>Rejects by reason</h3>
<table><tr><th class="l">stage</th><th class="l">operator</th><th class="l">reason</th><th>records</th></tr>
{% for r in stats.rejects.by_reason %}<tr><td class="l">{{ r.stage }}</td><td class="l">{{ r.operator }}</td>
<td class="l">{{ r.reason }}</td><td>{{ r.count | num }}</td></tr>{% endfor %}</table>{% endif %}</section>

<section id="samples"><h2>Samples</h2>
<h3>Kept records (random)</h3>
{% for s in kept_samples %}<details{{ " open" if loop.first }}><summary>{{ s.id }} &middot; {{ s.where }}</summary>
{% for role, text in s.messages %}
<div class="msg role-{{ role }}"><span class="role">{{ role }}:</span> {{ text }}</div>
{% endfor %}
</details>{% else %}<p class="note">no records</p>{% endfor %}
<h3>Rejected records (up to two per reason)</h3>
{% for s in rejected_samples %}<details>
<summary>{{ s.id }} &middot; <span class="reason">{{ s.operator }} / {{ s.reason }}</span></summary>
<p class="note">{{ s.detail }}{% if s.value %} &middot; value: {{ s.value }}{% endif %}</p>
{% for role, text in s.messages %}
<div class="msg role-{{ role }}"><span class="role">{{ role }}:</span> {{ text }}</div>
{% endfor %}
</details>{% else %}<p class="note">no rejects given</p>{% endfor %}
</section>
</main>
</body>
</html>
"""

SUMMARY_TEMPLATE = """<table><tr><th class="l"></th>{% for k in keys %}<th>{{ k }}</th>{% endfor %}</tr>
{% for name, row in rows %}<tr><td class="l">{{ name }}</td>
{% for k in keys %}<td>{{ row[k] | num }}</td>{% endfor %}</tr>
{% endfor %}</table>"""

SUMMARY_KEYS = ("count", "mean", "min", "p10", "p25", "p50", "p75", "p90", "p99", "max", "total")


def number(value: Any) -> str:
    """Thousands separators for ints, up to 3 significant decimals for floats, a dash for missing values."""
    if value is None:
        return "–"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.3f}".rstrip("0").rstrip(".")
    return f"{int(value):,}" if isinstance(value, (int, float)) else str(value)


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + f" … [{len(text) - limit:,} more characters]"


def message_view(record: Any) -> list[tuple[str, str]]:
    """``(role, text)`` pairs to show for a canonical record, or one ``raw`` entry for an ingest row."""
    if isinstance(record, dict) and isinstance(record.get("messages"), list):
        return [(str(m.get("role")), clip(str(m.get("content") or ""), MAX_MESSAGE_CHARS))
                for m in record["messages"] if isinstance(m, dict)]
    raw = record if isinstance(record, str) else orjson.dumps(record, default=str).decode()
    return [("raw", clip(raw, MAX_MESSAGE_CHARS))]


def kept_view(record: dict) -> dict:
    source = record.get("source") or {}
    where = ", ".join(f"{k} {Path(str(source[k])).name if k == 'file' else source[k]}"
                      for k in ("file", "line", "index") if source.get(k) is not None)
    return {"id": record.get("id", "?"), "where": where or "source unknown", "messages": message_view(record)}


def rejected_view(reject: dict) -> dict:
    record = reject.get("record")
    value = reject.get("value")
    return {
        "id": record.get("id", "?") if isinstance(record, dict) else "row",
        "operator": reject.get("operator", ""), "reason": reject.get("reason", ""),
        "detail": reject.get("detail", ""),
        "value": clip(orjson.dumps(value, default=str).decode(), MAX_VALUE_CHARS) if value is not None else "",
        "messages": message_view(record),
    }


def render_html(stats: dict, figures: dict[str, bytes], *, title: str, inputs: list[str], token_rule: str,
                kept_samples: list[dict], rejected_samples: list[dict]) -> str:
    """The whole report page as one string."""
    env = Environment(autoescape=True, trim_blocks=True, lstrip_blocks=True)
    env.filters["num"] = number
    env.filters["pct"] = lambda share: "<0.1%" if 0 < share < 0.001 else f"{100 * share:.1f}%"
    env.globals["TOP_LANGUAGES"] = TOP_LANGUAGES
    summary = env.from_string(SUMMARY_TEMPLATE)

    def figure(name: str) -> Markup:
        if name not in figures:
            return Markup("")
        data = base64.b64encode(figures[name]).decode()
        return Markup(f'<img alt="{name} figure" src="data:image/png;base64,{data}">')

    def summary_table(rows: list[tuple[str, dict]]) -> Markup:
        return Markup(summary.render(rows=rows, keys=SUMMARY_KEYS))

    overview = stats["overview"]
    cards = [("records", overview["records"]), ("turns", overview["turns"]),
             ("user turns", overview["user_turns"]), ("assistant turns", overview["assistant_turns"]),
             ("user tokens", overview["user_tokens"]), ("assistant tokens", overview["assistant_tokens"]),
             ("with system prompt", overview["records_with_system_prompt"]), ("languages", overview["languages"]),
             ("sources", overview["sources"])]
    env.globals.update(figure=figure, summary_table=summary_table)
    page = env.from_string(TEMPLATE)
    return page.render(stats=stats, title=title, inputs=inputs, token_rule=token_rule, overview_cards=cards,
                       kept_samples=[kept_view(r) for r in kept_samples],
                       rejected_samples=[rejected_view(r) for r in rejected_samples])
