"""The ``oid`` command line: parse arguments, call one library function, print the result.

Nothing here does real work: every command is a thin wrapper over a function in ``oidkit.<area>``
so that everything is usable from Python too. Library imports happen inside the commands so that
``oid --help`` stays instant and curating data never pays for importing torch.
"""

from __future__ import annotations

from enum import Enum
from typing import Any, Literal

import click
import typer
from rich.console import Console
from typer.core import TyperGroup

from oidkit import __version__
from oidkit.evaluate import TASKS

console = Console(stderr=True)
# typer raises the errors of its own copy of click (e.g. a value outside a Literal's or an Enum's choices)
TYPER_USAGE_ERRORS = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")  # printed as usage


class ClearErrors(TyperGroup):
    """Every exception a command raises ends as one message and exit 2 (130 for Ctrl-C), never a traceback
    or click's bare "Aborted!"; ``--debug`` / ``OIDKIT_DEBUG=1`` lets the traceback through."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, click.exceptions.Exit, click.ClickException, TYPER_USAGE_ERRORS):
            raise  # a chosen exit code, or a usage error typer already explains
        except KeyboardInterrupt:
            if ctx.params.get("debug"):
                raise
            console.print("[bold red]interrupted[/]")
            raise typer.Exit(130) from None
        except Exception as error:  # the one place every error is turned into a message
            if ctx.params.get("debug"):
                raise
            from rich.text import Text

            from oidkit.errors import describe_exception

            message = Text.assemble(("error: ", "bold red"), describe_exception(error))  # Text: no markup in paths
            console.print(message, soft_wrap=True)  # not wrapped: paths stay whole for copying
            raise typer.Exit(2) from None


app = typer.Typer(
    name="oid",
    cls=ClearErrors,
    help="oidkit: open instruction datasets -> curated data -> tuned, evaluated, served model.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_show_locals=False,
)


@app.callback()
def global_options(
    debug: bool = typer.Option(False, "--debug", envvar="OIDKIT_DEBUG",
                               help="show the full traceback of an error (also OIDKIT_DEBUG=1)"),
) -> None:
    """oidkit: open instruction datasets -> curated data -> tuned, evaluated, served model."""


def fail(message: str, code: int = 2) -> None:
    """Print an error for the user and exit with ``code``."""
    console.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


@app.command()
def version() -> None:
    """Print the oidkit version."""
    print(__version__)


CONFIG_HELP = ("YAML file of settings named like this command's flags (max_new_tokens: 64); key=value arguments "
               "override it and flags you type override both")
OVERRIDES_HELP = "key=value settings, named like the flags, e.g. max_tokens=256"


def split_positional(args: list[str] | None) -> tuple[list[str], list[str]]:
    """``(data arguments, key=value overrides)``: an argument that names no existing file and reads
    ``dotted.name=value`` is an override."""
    import re
    from pathlib import Path

    overrides = [a for a in args or [] if re.fullmatch(r"[A-Za-z_][\w.]*=.*", a, re.S) and not Path(a).exists()]
    return [a for a in args or [] if a not in overrides], overrides


def flag_settings(ctx: typer.Context, config: str | None, overrides: list[str], label: str,
                  required: tuple[str, ...] = ()) -> Any:
    """The running command's options as one validated config: their defaults < ``--config FILE`` < ``key=value``
    overrides < the flags typed, through ``core.config.load_config`` (one message naming every bad key).

    ``required``: options without a default (they may come from the file, so click does not demand them).
    """
    import typing

    from pydantic import ConfigDict, Field, create_model

    from oidkit.core.config import load_config

    hints = typing.get_type_hints(ctx.command.callback)
    options = [p for p in ctx.command.params if p.param_type_name == "option" and p.name != "config"]
    # an option's min/max (typer.Option(min=1)) bound the same setting in the file and the overrides
    fields = {p.name: ((hints[p.name], Field(..., ge=p.min, le=p.max)) if p.name in required else
                       (hints[p.name] | None if p.default is None else hints[p.name], Field(None, ge=p.min, le=p.max)))
              for p in options}
    schema = create_model(f"{ctx.command.name}_settings", __config__=ConfigDict(extra="forbid"), **fields)
    given = {p.name: ctx.params[p.name] for p in options
             if ctx.get_parameter_source(p.name).name in ("COMMANDLINE", "ENVIRONMENT")}
    defaults = {p.name: ctx.params[p.name] for p in options if p.name not in given and p.name not in required}
    return load_config(config, overrides, schema, label=label, base=defaults, given=given,
                       example=f"{options[-1].name}=...")


# --- ingest: convert / inspect / validate ----------------------------------------------------------

FORMAT_HELP = ("force the input format instead of detecting it: canonical, sharegpt, openai, alpaca, dolly, "
               "prompt_completion, oasst (message rows), oasst_tree")
ROLE_MAP_HELP = "extra role name mapping NAME=ROLE (repeatable), e.g. --role-map narrator=system"
COLUMNS_HELP = ("map the fields of a file no known format names, LLaMA-Factory's column/tag names: "
                "prompt=question,response=answer[,query=,system=,history=] or messages=turns,role=speaker,"
                "content=utterance,user_tag=USER,assistant_tag=SYSTEM; or a YAML/JSON file holding such an entry; "
                "or dataset_info.json#NAME")
FIELD_HELP = ("the key of a JSON object that holds the rows, e.g. data (a.b for nested keys); found alone when "
              "only one key holds rows")
LITERALS_HELP = "read JSONL lines written as Python dicts ({'a': 1}) with ast.literal_eval (safe: runs no code)"
ALLOW_HELP = ("accept this conversation problem instead of rejecting (repeatable), e.g. --allow no_assistant_turn "
              "for instruction-only data a model will answer")


REPAIR_HELP = ("repairs applied before the checks, comma-separated: rejoin (split chunks ID_0, ID_1, ... joined "
               "back), drop_leading_assistant, merge_consecutive; default all three (docs/ingest.md)")
NO_REPAIR_HELP = "read the rows as they are: no repair, broken conversations are rejected"


def repairs_option(repair: str, no_repair: bool) -> str:
    """The repair policies of ``--repair`` / ``--no-repair``."""
    return "" if no_repair else repair


def parse_role_map(pairs: list[str] | None) -> dict | None:
    """``["narrator=system"]`` -> the default role table extended with it."""
    from oidkit.records import extend_role_map

    if not pairs:
        return None
    extra = {}
    for pair in pairs:
        name, sep, role = pair.partition("=")
        if not sep or not name.strip():
            fail(f"--role-map expects NAME=ROLE, got {pair!r}")
        extra[name.strip()] = role.strip()
    try:
        return extend_role_map(extra)
    except ValueError as e:
        fail(str(e))


def byte_progress(inputs: str, label: str) -> tuple:
    """``(rich progress bar over the input bytes, callback taking the bytes read so far)``."""
    from oidkit.core.progress import byte_bar
    from oidkit.io.ingest import input_bytes

    return byte_bar(label, input_bytes(inputs), console)


def print_notes(summary: dict) -> None:
    """How a file was read when it took a guess, e.g. which key of a JSON object held the rows."""
    for f in summary["files"]:
        if f.get("note"):
            console.print(f"  note: {f['file']}: {f['note']}")


def print_rejected(summary: dict) -> None:
    """One line per reject reason with its count and meaning, then one per repair."""
    from oidkit.io import INGEST_REASONS

    for reason, count in summary["rejected"].items():
        console.print(f"  [yellow]{count:>9,}[/]  {reason}: {INGEST_REASONS.get(reason, '')}")
    for repair, count in summary.get("repaired", {}).items():
        console.print(f"  [cyan]{count:>9,}[/]  repaired: {repair}")
    if summary.get("joined_rows"):
        console.print(f"  [cyan]{summary['joined_rows']:>9,}[/]  rows joined onto an earlier chunk (rejoin)")


@app.command("convert")
def convert_command(
    inputs: str = typer.Argument(..., help="file, folder of shards, glob (quoted) or save_to_disk folder"),
    out: str = typer.Argument(..., help="output file; format from its name unless --to is given"),
    to: str = typer.Option(None, "--to", help="output format: jsonl (canonical), parquet, alpaca, sharegpt, openai"),
    format: str = typer.Option(None, "--format", "-f", help=FORMAT_HELP),
    shard_size: int = typer.Option(None, help="records per shard (out-00000.parquet, ...; then out.shards.json)"),
    salvage: bool = typer.Option(False, help="keep the complete records of a truncated JSON array or cut .gz/.zst "
                                 "file; the cut tail becomes a reject"),
    strict: bool = typer.Option(False, help="stop at the first bad row instead of quarantining it"),
    role_map: list[str] = typer.Option(None, "--role-map", help=ROLE_MAP_HELP),
    rejects: str = typer.Option(None, help="rejects file (default: OUT's name with .rejects.jsonl)"),
    allow: list[str] = typer.Option(None, "--allow", help=ALLOW_HELP),
    repair: str = typer.Option("rejoin,drop_leading_assistant,merge_consecutive", "--repair", help=REPAIR_HELP),
    no_repair: bool = typer.Option(False, "--no-repair", help=NO_REPAIR_HELP),
    columns: str = typer.Option(None, "--columns", help=COLUMNS_HELP),
    field: str = typer.Option(None, "--field", help=FIELD_HELP),
    python_literals: bool = typer.Option(False, "--python-literals", help=LITERALS_HELP),
    dataset_info: bool = typer.Option(False, "--dataset-info", help="also write OUT's entry in the dataset_info.json "
                                      "beside it, so llamafactory-cli train reads OUT as is (alpaca/sharegpt/openai)"),
) -> None:
    """Convert between formats through the canonical record; bad rows go to a rejects file.

    Input formats are detected from content (Alpaca, ShareGPT, OpenAI chat, Dolly, OASST, prompt/completion,
    canonical) in JSON, JSONL, CSV, Parquet or a `datasets` save_to_disk folder, plain or .gz/.zst, alone or in
    a .zip; other field names are mapped with --columns.

    Examples:

      oid convert ShareGPT_V3_unfiltered_cleaned_split.json demo-out/sharegpt.parquet --salvage

      oid convert alpaca_data.json demo-out/alpaca.sharegpt.json

      oid convert 'shards/*.jsonl.zst' demo-out/all.parquet --shard-size 100000 --role-map narrator=system

      oid convert ShareGPT_V3_unfiltered_cleaned_split.json demo-out/raw.parquet --salvage --no-repair

      oid convert qa.csv demo-out/qa.alpaca.json --columns prompt=question,response=answer --dataset-info

    Split conversations (ShareGPT's ID_0, ID_1, ... chunks) are repaired by default: rejoined, leading
    assistant turns of orphan chunks dropped, consecutive same-role turns merged; each repair is counted
    and recorded in meta.repairs. Content given as parts (text, image_url, input_audio, reasoning) is read.
    """
    from oidkit.io import convert

    bar, advance = byte_progress(inputs, "converting")
    with bar:
        summary = convert(inputs, out, in_format=format, out_format=to, shard_size=shard_size, salvage=salvage,
                          strict=strict, role_map=parse_role_map(role_map), rejects=rejects, on_progress=advance,
                          allow=allow or (), repairs=repairs_option(repair, no_repair),
                          columns=columns, field=field, python_literals=python_literals,
                          dataset_info=dataset_info)
    formats = ", ".join(sorted({f["format"] for f in summary["files"] if f["format"]})) or "empty"
    console.print(f"read {summary['rows']:,} rows from {len(summary['files'])} file(s) ({formats}); "
                  f"wrote [bold green]{summary['written']:,}[/] records in {summary['seconds']:.1f} s")
    print_notes(summary)
    print_rejected(summary)
    if summary["unreadable_bytes"]:
        console.print(f"  unreadable bytes (truncated input): {summary['unreadable_bytes']:,}")
    for path in summary["outputs"]:
        console.print(f"  -> {path}")
    console.print(f"  rejects ({sum(summary['rejected'].values()):,}) -> {summary['rejects_file']}")
    if summary["dataset_info"]:
        console.print(f"  LLaMA-Factory entry -> {summary['dataset_info']}")


@app.command("inspect")
def inspect_command(
    inputs: str = typer.Argument(..., help="file, folder of shards, glob (quoted) or save_to_disk folder"),
    format: str = typer.Option(None, "--format", "-f", help=FORMAT_HELP),
    salvage: bool = typer.Option(False, help="read the complete records of a truncated JSON array or cut .gz/.zst "
                                 "file"),
    samples: int = typer.Option(2, help="records to print"),
    role_map: list[str] = typer.Option(None, "--role-map", help=ROLE_MAP_HELP),
    as_json: bool = typer.Option(False, "--json", help="print the summary as JSON instead of tables"),
    allow: list[str] = typer.Option(None, "--allow", help=ALLOW_HELP),
    repair: str = typer.Option("rejoin,drop_leading_assistant,merge_consecutive", "--repair", help=REPAIR_HELP),
    no_repair: bool = typer.Option(False, "--no-repair", help=NO_REPAIR_HELP),
    columns: str = typer.Option(None, "--columns", help=COLUMNS_HELP),
    field: str = typer.Option(None, "--field", help=FIELD_HELP),
    python_literals: bool = typer.Option(False, "--python-literals", help=LITERALS_HELP),
) -> None:
    """Detected format, record and turn counts, roles, languages, example records and problems.

    Example:  oid inspect ShareGPT_V3_unfiltered_cleaned_split.json --salvage
    """
    import json

    from rich.table import Table

    from oidkit.io import INGEST_REASONS, inspect

    bar, advance = byte_progress(inputs, "inspecting")
    with bar:
        summary = inspect(inputs, format=format, salvage=salvage, samples=samples, role_map=parse_role_map(role_map),
                          on_progress=advance, allow=allow or (), repairs=repairs_option(repair, no_repair),
                          columns=columns, field=field,
                          python_literals=python_literals)
    if as_json:
        print(json.dumps(summary, ensure_ascii=False, indent=2))
        return
    out = Console()
    files = Table("file", "container", "format", title="input")
    for f in summary["files"]:
        files.add_row(f["file"], f["container"], f["format"])
    out.print(files)
    print_notes(summary)
    counts = Table("what", "count", "meaning", title="counts")
    counts.add_row("rows read", f"{summary['rows']:,}", "rows of the input (a cut tail counts as one, rejected)")
    counts.add_row("valid records", f"{summary['records']:,}", "well-formed conversations")
    counts.add_row("turns", f"{summary['turns']:,}", "messages in the valid records")
    for reason, count in summary["rejected"].items():
        counts.add_row(f"rejected: {reason}", f"{count:,}", INGEST_REASONS.get(reason, ""))
    for repair, count in summary["repaired"].items():
        counts.add_row(f"repaired: {repair}", f"{count:,}", "records repaired so (meta.repairs says how)")
    counts.add_row("rows joined", f"{summary['joined_rows']:,}", "chunks joined onto an earlier chunk (rejoin)")
    counts.add_row("unreadable bytes", f"{summary['unreadable_bytes']:,}", "bytes after the last complete record")
    out.print(counts)
    for title, key in (("roles", "roles"), ("source role names mapped to a role", "role_spellings"),
                       (f"languages (sample of {summary['language_sample']})", "languages")):
        table = Table("value", "count", title=title)
        for value, count in summary[key].items():
            table.add_row(str(value), f"{count:,}")
        out.print(table)
    for record in summary["examples"]:  # contents cut to 300 characters: a glance, not a dump
        shown = {**record, "messages": [{**m, "content": m["content"][:300]} for m in record["messages"]]}
        out.print_json(json.dumps(shown, ensure_ascii=False))
    for p in summary["problem_examples"]:
        where = ", ".join(f"{k} {p[k]}" for k in ("line", "offset", "index") if k in p)
        out.print(f"[yellow]problem[/] {p['file']}" + (f" ({where})" if where else "") +
                  f": {p['reason']}: {p['detail'][:200]}")


@app.command("validate")
def validate_command(
    inputs: str = typer.Argument(..., help="file, folder of shards, glob (quoted) or save_to_disk folder"),
    format: str = typer.Option(None, "--format", "-f", help=FORMAT_HELP),
    role_map: list[str] = typer.Option(None, "--role-map", help=ROLE_MAP_HELP),
    max_listed: int = typer.Option(1000, "--max", help="list at most this many problems (all are counted)"),
    allow: list[str] = typer.Option(None, "--allow", help=ALLOW_HELP),
    repair: str = typer.Option("rejoin,drop_leading_assistant,merge_consecutive", "--repair", help=REPAIR_HELP),
    no_repair: bool = typer.Option(False, "--no-repair", help=NO_REPAIR_HELP),
    columns: str = typer.Option(None, "--columns", help=COLUMNS_HELP),
    field: str = typer.Option(None, "--field", help=FIELD_HELP),
    python_literals: bool = typer.Option(False, "--python-literals", help=LITERALS_HELP),
) -> None:
    """List every problem with its file, line, byte offset and record index; exit 1 if there is any.

    Example:  oid validate demo-out/alpaca.jsonl && echo clean
    """
    from oidkit.io import validate

    bar, advance = byte_progress(inputs, "validating")
    with bar:
        summary = validate(inputs, format=format, role_map=parse_role_map(role_map), max_listed=max_listed,
                           on_progress=advance, allow=allow or (), repairs=repairs_option(repair, no_repair),
                           columns=columns, field=field,
                           python_literals=python_literals)
    for p in summary["problems"]:
        where = ", ".join(f"{k} {p[k]}" for k in ("line", "offset", "index") if k in p)
        print(f"{p['file']}: {p['reason']}: {p['detail']}" + (f" ({where})" if where else ""))
    total = sum(summary["rejected"].values())
    total += len(summary["incomplete"])
    console.print(f"{summary['rows']:,} rows, {summary['records']:,} valid, {total:,} problems")
    print_rejected(summary)
    if not summary["ok"]:
        raise typer.Exit(1)


# --- curate ----------------------------------------------------------------------------------------


@app.command(context_settings={"allow_interspersed_args": True})
def curate(
    args: list[str] = typer.Argument(..., help="RECIPE.yaml or a packaged recipe (default) \\[key=value ...]; "
                                              "with --op: IN OUT \\[key=value ...]"),
    op: list[str] = typer.Option(None, "--op", help="run these operators (repeatable) on IN -> OUT, no recipe"),
    force: bool = typer.Option(False, "--force", help="run again even if OUT is up to date"),
    salvage: bool = typer.Option(False, "--salvage", help="keep the complete records of a truncated input "
                                 "(same as input.salvage=true); the cut tail goes to OUT/ingest_rejects.jsonl"),
) -> None:
    """Run a curation recipe: kept records, every reject with its reason, and per-operator stats.

    Writes OUT/kept.jsonl, OUT/rejects.jsonl, OUT/stats.json, OUT/recipe.yaml (and OUT/splits/ with a
    split step). With engine=ray the workers write kept-00000.jsonl, ... and rejects-00000.jsonl, ...,
    each set's kept.shards.json / rejects.shards.json last. Overrides use key=value: output=..., engine=ray,
    heuristics.min_chars=100. Re-running a finished recipe does nothing; an interrupted one resumes after
    the last finished step.

    Examples:

      oid curate recipes/default.yaml input=demo-out/sharegpt.jsonl output=demo-out/curated

      oid curate default input=data.jsonl output=out    # the packaged recipe, from any folder

      oid curate --op normalise --op pii data.jsonl out/ 'pii.types=\\[email,phone]'
    """
    from oidkit.curate.recipe import load_recipe, one_off_recipe
    from oidkit.curate.runner import run_recipe

    salvaging = ["input.salvage=true"] if salvage else []
    if op:
        if len(args) < 2:
            fail("with --op give IN and OUT: oid curate --op pii data.jsonl out/")
        recipe = one_off_recipe(op, args[0], args[1], args[2:] + salvaging)
    else:
        recipe = load_recipe(args[0], args[1:] + salvaging)
    stats = run_recipe(recipe, force=force, show_progress=True)
    if stats.get("up_to_date"):
        console.print(f"{recipe.output.path} is up to date (same inputs and recipe); --force to run again")
    for step in stats["operators"]:
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(step["reasons"].items(), key=lambda kv: -kv[1]))
        extra = ", ".join(f"{k} {v}" for k, v in step["extra"].items())
        console.print(f"{step['name']:>16}: {step['in']} -> {step['out']}  modified {step['modified']}  "
                      f"{step['seconds']:.1f}s  {reasons}{'  [' + extra + ']' if extra else ''}", markup=False)
        for note in step.get("notes", []):
            console.print(f"{'':>16}  note: {note}", markup=False, soft_wrap=True)
    read = {"rows": stats["input"]["records"], "rejected_on_read": 0, "ingest_rejects": None,  # older stats.json
            **stats["input"]}
    console.print(f"read {read['rows']:,} rows: {read['rejected_on_read']:,} rejected on read"
                  + (f" (-> {read['ingest_rejects']})" if read["ingest_rejects"] else "")
                  + f", {read['records']:,} records; kept {stats['output']['records']:,} of {read['records']:,} "
                  f"in {stats['seconds']:.1f}s -> {stats['output']['path']}"
                  + (f" (+{len(stats['output']['paths']) - 1} shards)" if len(stats["output"]["paths"]) > 1 else ""),
                  markup=False)


@app.command()
def ops(name: str = typer.Argument(None, help="show one operator only")) -> None:
    """List curation operators with their parameters, defaults and reason codes.

    Example: oid ops near_dedup
    """
    from rich.table import Table

    from oidkit.curate.ops import describe_operators

    shown = [d for d in describe_operators() if name in (None, d["name"])]
    if not shown:
        fail(f"no operator {name!r}; run `oid ops` for the list")
    out = Console()
    for described in shown:
        table = Table(title=f"{described['name']} ({described['kind']}): {described['help']}", title_justify="left")
        for column in ("parameter", "type", "default", "help"):
            table.add_column(column, overflow="fold")
        for param in described["params"]:
            table.add_row(param["name"], param["type"], repr(param["default"]), param["help"])
        out.print(table)
        for code, meaning in described["reasons"].items():
            out.print(f"  reason [bold]{code}[/]: {meaning}")

# --- report ----------------------------------------------------------------------------------------


@app.command("report")
def report_command(
    data: str = typer.Argument(..., help="records (any supported format), or the folder `oid curate` wrote"),
    out: str = typer.Option(..., "-o", "--out", help="output folder: report.html, figures/, stats.json, README.md"),
    rejects: str = typer.Option(None, help="rejects JSONL (ingest or curate) to count and sample"),
    stats: str = typer.Option(None, "--stats", help="the curation stats.json, for the funnel"),
    recipe: str = typer.Option(None, help="the curation recipe, copied into the dataset card"),
    tokenizer: str = typer.Option(None, help="model folder whose tokenizer counts tokens "
                                  "(default: whitespace words, one token per CJK character)"),
    format: str = typer.Option(None, help="input format when it cannot be detected"),
    salvage: bool = typer.Option(False, help="report on the complete records of a truncated file"),
    title: str = typer.Option(None, help="title of the page and the dataset card"),
    license: str = typer.Option("other", help="license identifier for the dataset card, e.g. cc-by-4.0"),
    samples: int = typer.Option(8, help="kept records shown on the page"),
    seed: int = typer.Option(0, help="seed of the record samples"),
) -> None:
    """Dataset report: one self-contained HTML page, PNG figures, stats.json and a dataset card.

    Example (a curation output folder supplies kept data, rejects, stats and recipe itself):

      oid report demo-out/curated -o demo-out/report
      oid report data.jsonl --rejects rejects.jsonl --stats stats.json --tokenizer my-model -o report
    """
    from oidkit.report.build import build_report, find_inputs

    bar, advance = byte_progress([str(p) for p in find_inputs(data).data], "reading")
    with bar:
        result = build_report(data, out, rejects=rejects, curate_stats=stats, recipe=recipe, tokenizer=tokenizer,
                              format=format, salvage=salvage, title=title, license=license, sample_size=samples,
                              seed=seed, progress=advance)
    overview, read = result["overview"], result["read"]
    console.print(f"read {read['rows']:,} rows: {read['rejected_on_read']:,} rejected on read, "
                  f"{overview['records']:,} records, {overview['languages']} languages, "
                  f"{overview['user_tokens'] + overview['assistant_tokens']:,} tokens ({result['tokenizer']}) "
                  f"-> {out}/report.html, {out}/README.md, {out}/stats.json")
    for warning in result["warnings"]:
        console.print(f"[yellow]warning:[/] {warning}")


# --- models / train / export -----------------------------------------------------------------------

models_app = typer.Typer(help="Known model aliases and the local cache of converted models.", no_args_is_help=True)
app.add_typer(models_app, name="models")


@models_app.command("pull")
def models_pull(
    alias: str = typer.Argument(..., help="a known alias (see `oid models list`) or a .gguf file"),
    force: bool = typer.Option(False, help="convert again even when cached"),
) -> None:
    """Convert a packaged GGUF model once to a cached safetensors folder and print its path.

    Example:  oid models pull smollm2-135m-instruct
    """
    from oidkit.models import resolve_model
    from oidkit.models.registry import KNOWN_MODELS, pull_model

    print(pull_model(alias, force=force) if alias in KNOWN_MODELS else resolve_model(alias))


@models_app.command("list")
def models_list() -> None:
    """Show the known aliases and what is cached ($OIDKIT_CACHE/models or ~/.cache/oidkit/models).

    Example:  oid models list
    """
    from rich.table import Table

    from oidkit.models.registry import list_models

    table = Table("alias", "cached", "size MB", "path", "description")
    for row in list_models():
        table.add_row(row["alias"], "yes" if row["cached"] else "no", f"{row['size_mb']:.0f}", row["path"],
                      row["description"])
    Console().print(table)


DEVICE_HELP = "auto (CUDA when torch sees a GPU, else the CPU), cpu or cuda (fails at once without a GPU)"
TRAIN_DEVICE_HELP = DEVICE_HELP + "; sets train.device (default auto)"


def device_override(device: str | None) -> list[str]:
    """``--device X`` of oid train/pretrain as the config override ``train.device=X``."""
    return [f"train.device={device}"] if device else []


@app.command("train")
def train_command(
    config: str = typer.Argument(..., help="training config YAML, or a packaged one (train_demo, pretrain_tiny)"),
    overrides: list[str] = typer.Argument(None, help="key=value overrides, e.g. optim.lr=1e-4 train.max_steps=10"),
    resume: bool = typer.Option(False, "--resume", help="continue from the latest checkpoint in train.output_dir"),
    nproc_per_node: int = typer.Option(1, help="data-parallel processes (started with torchrun; fine-tuning only)"),
    device: str = typer.Option(None, help=TRAIN_DEVICE_HELP),
) -> None:
    """Train a causal LM: fine-tune one on records (LoRA or full), or train a new one from scratch on text.

    model.init chooses: pretrained (default) fine-tunes model.name on chat records; scratch trains a new Llama
    of the model section's shape on plain text (data.kind text), as `oid pretrain` does. Both write metrics,
    checkpoints (--resume continues exactly), plots and summary.json into train.output_dir.

    model.impl=oidkit fine-tunes our readable Llama (oidkit.models.llama) instead of transformers' class, from
    the same weights; its runs save under transformers' names, so export, eval and serve treat them alike.

    On a GPU (--device auto or cuda): SDPA attention, pinned-memory batches, and bf16 autocast with
    train.precision=bf16.

    Examples:

      oid train recipes/train_demo.yaml data.train=demo-out/curated/train.jsonl train.max_steps=40

      oid train pretrain_tiny tokenizer=demo-out/tokenizer data.train=[corpus.txt] train.max_steps=50
    """
    from oidkit.train.config import load_train_config

    overrides = [*(overrides or []), *device_override(device)]
    validated = load_train_config(config, overrides)  # before any work (or before starting processes)
    if nproc_per_node > 1:
        if validated.model.init == "scratch":
            fail("--nproc-per-node: training from scratch (model.init=scratch) runs in one process")
        from oidkit.train.distributed import launch

        raise typer.Exit(launch(nproc_per_node, [config, *overrides, *(["--resume"] if resume else [])]))
    from oidkit.train.run import run_training, summary_line

    console.print(summary_line(run_training(validated, resume=resume, console=console)))


@app.command("export")
def export_command(
    run_dir: str = typer.Argument(..., help="an `oid train` or `oid pretrain` output folder"),
    out: str = typer.Argument(..., help="folder to write"),
    merge: bool = typer.Option(True, "--merge/--no-merge", help="fold LoRA adapters into the base weights"),
    which: str = typer.Option("best", help="best (lowest eval loss; falls back to the last weights) or last "
                              "(RUN/last, or RUN/final of a run from scratch)"),
    format: str = typer.Option("hf", help="output format: hf (a standalone Hugging Face folder), gguf (one file)"),
    quant: str = typer.Option("f16", help="with --format gguf: f16 or q8_0 (half the size, ~8.5 bits/weight)"),
    eval_report: str = typer.Option(None, help="an `oid eval` report.json (or its folder): its tables go into "
                                    "the model card"),
    base_model: str = typer.Option(None, help="hub id of the base model for the card, when the run used a local "
                                   "folder (aliases are known)"),
    license: str = typer.Option(None, help="license of the card (default: the base model's)"),
    data_card: str = typer.Option(None, help="the training data's card (default: README.md beside the data)"),
) -> None:
    """Export a training run as a standalone model folder that plain `transformers` loads.

    The folder (or the bare adapter, --no-merge) gets a model card, README.md: base model as a hub id,
    license, the data's card, training settings and, with --eval-report, the evaluation tables.

    Example:  oid export --merge demo-out/train demo-out/model --eval-report demo-out/eval

    GGUF (llama.cpp, Ollama; RUN_DIR may also be a model folder or alias):
    oid export --format gguf --quant q8_0 demo-out/train demo-out/model-q8_0.gguf
    """
    if format == "gguf":
        from oidkit.models.export_gguf import export_run_gguf

        result = export_run_gguf(run_dir, out, quant=quant, which=which)
        console.print(f"wrote {result['path']} ({result['tensors']} tensors, {result['bytes'] / 1e6:.1f} MB, {quant})")
        return
    from oidkit.models.export import export_run

    result = export_run(run_dir, out, format=format, which=which, merge=merge, eval_report=eval_report,
                        base_model=base_model, license=license, data_card=data_card)
    console.print(f"wrote {result} (model card: {result / 'README.md'})")


# --- applications ------------------------------------------------------------------------------------

app_app = typer.Typer(help="Applications end to end: service assistant, dialogue summarisation, zh<->en "
                      "translation.", no_args_is_help=True)
app.add_typer(app_app, name="app")


@app_app.command("run", context_settings={"allow_interspersed_args": True})
def app_run(
    name: str = typer.Argument(..., help="service, summarise or translate"),
    overrides: list[str] = typer.Argument(None, help="key=value overrides of recipes/apps/NAME.yaml, e.g. "
                                          "sizes.quick.test=50 train.lora.r=8 train.train.max_steps=300 (the "
                                          "recipe's train section is the training config; dtype=float32 to "
                                          "generate in fp32 where the CPU has no bf16 instructions)"),
    quick: bool = typer.Option(False, "--quick", help="the small size: under 20 minutes on 2 CPU cores with native "
                               "bf16 (docs/apps.md)"),
    out: str = typer.Option(None, "--out", "-o", help="output folder (default apps-out/NAME)"),
    model: str = typer.Option(None, "--model", "-m", help="base model instead of the recipe's (folder or alias)"),
) -> None:
    """Real public data -> task conversations -> curate -> LoRA fine-tune -> base / few-shot / tuned measured
    on the held-out test set with paired bootstrap intervals -> OUT/report.md.

    Examples:

      oid app run translate --quick --out apps-out/translate

      oid app run service --quick sizes.quick.crosswoz_test=50   (service: SGD and CrossWOZ, in Chinese)
    """
    from oidkit.apps.pipeline import run_app

    report = run_app(name, quick=quick, out=out, model=model, overrides=overrides or [],
                     log=lambda line: console.print(line, markup=False), console=console)
    primary, result = report["primary"], report["primary_result"]
    if result:
        cell = result["tuned - base"]
        console.print(f"{primary['metric']} on {primary['test_set']}: base {result['base']:.4f}, few-shot "
                      f"{result['few-shot']:.4f}, tuned {result['tuned']:.4f}; tuned - base {cell['diff']:+.4f} "
                      f"[{cell['low']:+.4f}, {cell['high']:+.4f}]", markup=False)
    console.print(f"report {report['out']}/report.md; tuned model {report['model']}; curated data "
                  f"{report['out']}/curated; total {report['seconds']['total']:.0f}s", markup=False)


@app_app.command("list")
def app_list() -> None:
    """The packaged applications with their task, primary metric and sources.

    Example:  oid app list
    """
    from oidkit.apps.pipeline import list_apps

    for row in list_apps():
        print(f"{row['app']:>10}  {row['task']:<12} primary {row['primary']['metric']} on {row['primary']['test_set']}"
              f"  sources: {', '.join(row['sources'].values())}")


# --- evaluate / serve / chat -----------------------------------------------------------------------


EvalTask = Literal[TASKS]  # --task's choices: the task registry (a bad value is a usage error)


@app.command("eval", context_settings={"allow_interspersed_args": True})
def eval_command(
    ctx: typer.Context,
    data: list[str] = typer.Argument(..., help="task files: records JSONL, GSM8K, Self-Instruct/BELLE eval, "
                                     "CMMLU CSV or MMLU-style JSONL (type detected from the fields); an "
                                     "argument that names no file and reads key=value is a setting"),
    config: str = typer.Option(None, "--config", help=CONFIG_HELP),
    model: str = typer.Option(None, "--model", "-m", help="model folder or alias to evaluate"),
    compare: tuple[str, str] | None = typer.Option(None, help="evaluate two models side by side: --compare A B"),
    out: str = typer.Option("eval-out", "-o", "--out", help="folder for report.json and report.md"),
    task: EvalTask = typer.Option(None, help="force the task type instead of detecting it from the fields"),
    limit: int = typer.Option(None, min=1, help="evaluate only the first N examples of each file"),
    max_new_tokens: int = typer.Option(128, min=1, help="generation length for generation tasks"),
    batch_size: int = typer.Option(4, min=1),
    tokens: Literal["assistant", "all"] = typer.Option("assistant", help="perplexity over 'assistant' tokens only "
                                                      "or 'all' tokens"),
    generate: bool = typer.Option(True, help="records: also generate the last assistant turn and score it"),
    shots: int = typer.Option(5, min=0, help="multiple choice: solved examples from the dev split"),
    chinese_rouge: Literal["char", "jieba"] = typer.Option("char", help="ROUGE tokens for Chinese: 'char' or "
                                                            "'jieba' words"),
    judge_model: str = typer.Option(None, help="judge model (local folder/alias, or a name at --judge-endpoint)"),
    judge_endpoint: str = typer.Option(None, help="OpenAI-compatible base URL of the judge; key from --judge-key-env"),
    judge_key_env: str = typer.Option("OPENAI_API_KEY", help="environment variable holding the judge's API key"),
    device: str = typer.Option("auto", help=DEVICE_HELP),
) -> None:
    """Evaluate a model (perplexity, BLEU/chrF/ROUGE/EM/F1, GSM8K, multiple choice), or compare two.

    Examples:

      oid eval held_out.jsonl --model demo-out/tuned --limit 20 -o eval-out

      oid eval held_out.jsonl ../shared/data/cmmlu/test/nutrition.csv --compare smollm2-135m-instruct \\
          demo-out/tuned --limit 20 --max-new-tokens 64 -o demo-out/eval

      oid eval held_out.jsonl --config eval.yaml limit=20 -o eval-out    # eval.yaml: {model: M, shots: 0}
    """
    from oidkit.core.progress import LabelBars
    from oidkit.evaluate.judge import judge_from_backend
    from oidkit.evaluate.run import EvalOptions, compare_models, evaluate_model, markdown_report, write_report
    from oidkit.evaluate.tasks import load_task

    data, overrides = split_positional(data)
    s = flag_settings(ctx, config, overrides, "eval settings")
    models = list(s.compare) if s.compare else [s.model] if s.model else []
    if not models or (s.compare and s.model):
        fail("give --model M to evaluate one model, or --compare A B to evaluate two side by side")
    if not data:
        fail("give the task files to evaluate on, e.g. oid eval held_out.jsonl --model M")
    tasks = [load_task(path, task=s.task, limit=s.limit, shots=s.shots) for path in data]
    options = EvalOptions(max_new_tokens=s.max_new_tokens, batch_size=s.batch_size, perplexity_tokens=s.tokens,
                          generate=s.generate, chinese_rouge=s.chinese_rouge, device=s.device)
    judge = judge_from_backend(s.judge_model, s.judge_endpoint, s.judge_key_env) if s.judge_model else None
    with LabelBars(console, transient=True) as progress:
        if len(models) == 2:
            report = compare_models(models[0], models[1], tasks, options, judge=judge, progress=progress)
        else:
            report = {"models": models, "results": {models[0]: evaluate_model(models[0], tasks, options, progress)}}
    json_path, md_path = write_report(report, s.out)
    print(markdown_report(report, with_examples=False))
    console.print(f"report: {md_path} and {json_path}")


class Quantize(str, Enum):
    int8 = "int8"
    int8_dynamic = "int8-dynamic"


QUANTIZE_HELP = ("int8: weight-only int8 (1/4 of the weight memory, ~+1% perplexity, slower); int8-dynamic: "
                 "int8 matmuls with per-token activation scales, outliers first smoothed into the weights on packaged "
                 "calibration text (faster, ~+1% perplexity). "
                 "Same as appending @int8 to the model name.")


def with_quantize(model: str, quantize: Quantize | None) -> str:
    """The model spec with its ``@int8`` suffix when ``--quantize`` asks for one."""
    return f"{model}@{quantize.value}" if quantize else model


@app.command("serve")
def serve_command(
    model: str = typer.Argument(..., help="model folder or alias"),
    host: str = typer.Option("127.0.0.1", help="address to listen on (0.0.0.0 exposes it to the network)"),
    port: int = typer.Option(8000),
    name: str = typer.Option(None, help="model name clients use (default: the folder's name or the alias)"),
    max_batch_size: int = typer.Option(8, min=1, help="completions decoded together, one forward pass per step; "
                                       "more requests wait for a free place"),
    max_queue: int = typer.Option(64, help="requests waiting for the model beyond this are answered 429"),
    max_body_mb: float = typer.Option(8.0, min=0.001, help="request bodies over this many MB are answered 413"),
    quantize: Quantize = typer.Option(None, help=QUANTIZE_HELP),
    device: str = typer.Option("auto", help=DEVICE_HELP),
) -> None:
    """Serve a model over an OpenAI-compatible API: /v1/models, /v1/chat/completions, /v1/completions,
    and a chat page in the browser at / (streaming, system prompt, temperature, copy, regenerate).

    Concurrent requests are batched: each forward pass decodes the next token of every running completion.
    With --max-batch-size 1 float Linear weights are held transposed: one row decodes 1.2-1.7x faster on CPU
    (4-8 rows 0.8x, so not by default; a tied head costs a copy).
    Chat takes tools/tool_choice (templates that read tools; calls parsed back into tool_calls) and
    logprobs/top_logprobs.

    Example:  oid serve demo-out/tuned --port 8000 &   then   oid ask "What is 2+2?" --port 8000
              oid serve smollm2-135m-instruct --quantize int8 --max-batch-size 4
              oid serve smollm2-135m-instruct --device cuda    (SDPA attention on the GPU)
    """
    from oidkit.serve.app import run_server

    run_server(with_quantize(model, quantize), host=host, port=port, served_name=name, max_batch_size=max_batch_size,
               max_queue=max_queue, max_body_bytes=int(max_body_mb * 1024 * 1024), device=device)


@app.command("chat")
def chat_command(
    model: str = typer.Argument(..., help="model folder or alias"),
    system: str = typer.Option(None, help="system prompt"),
    max_tokens: int = typer.Option(256), temperature: float = typer.Option(0.7), top_p: float = typer.Option(0.9),
    seed: int = typer.Option(None),
    quantize: Quantize = typer.Option(None, help=QUANTIZE_HELP),
    device: str = typer.Option("auto", help=DEVICE_HELP),
) -> None:
    """Chat with a model in the terminal, answers streamed; /reset, /system TEXT, /quit.

    Example:  oid chat smollm2-135m-instruct --system "You are concise." --device cpu
    """
    import sys

    from oidkit.serve.chat import chat_loop
    from oidkit.serve.generation import SamplingParams, load_serving_model

    loaded, tokenizer = load_serving_model(with_quantize(model, quantize), device=device, one_row=True)
    params = SamplingParams(max_tokens=max_tokens, temperature=temperature, top_p=top_p, seed=seed)

    def write(text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()

    chat_loop(loaded, tokenizer, sys.stdin, write, params, system=system)
    print()


@app.command("ask")
def ask_command(
    question: str = typer.Argument(...),
    port: int = typer.Option(8000), host: str = typer.Option("127.0.0.1"),
    model: str = typer.Option(None, help="model name (default: the first the server lists)"),
    max_tokens: int = typer.Option(128), wait: float = typer.Option(60.0, help="seconds to wait for the server"),
) -> None:
    """Ask a running OpenAI-compatible server one question through the openai client, streaming the answer.

    Example:  oid serve demo-out/tuned --port 8000 &  oid ask "Name three primary colours." --port 8000
    """
    from oidkit.serve.ask import ask

    ask(question, base_url=f"http://{host}:{port}/v1", model=model, max_tokens=max_tokens, wait=wait)
    print()


# --- theory: tokenizer / pretrain / viz --------------------------------------------------------------

tokenizer_app = typer.Typer(help="Train a byte-level BPE tokenizer and compare tokenizers.", no_args_is_help=True)
app.add_typer(tokenizer_app, name="tokenizer")
CORPUS_HELP = "text files (.txt/.md: one text per paragraph) or record files (one text per record)"


@tokenizer_app.command("train")
def tokenizer_train(
    corpus: list[str] = typer.Argument(..., help=CORPUS_HELP),
    out: str = typer.Option(..., "-o", "--out", help="output folder (a transformers tokenizer)"),
    vocab_size: int = typer.Option(8000, help="vocabulary size, special tokens and the 256 bytes included"),
    limit: int = typer.Option(None, help="use only the first N texts"),
) -> None:
    """Train a byte-level BPE (no unknown bytes) with ChatML special tokens and chat template.

    Example:  oid tokenizer train ShareGPT_V3_unfiltered_cleaned_split.json --limit 5000 --vocab-size 4000 \
-o demo-out/tokenizer
    """
    from oidkit.models.tokenizer import train_tokenizer

    with console.status("training the tokenizer"):
        result = train_tokenizer(corpus, out, vocab_size=vocab_size, limit=limit)
    console.print(f"trained on {result['texts']:,} texts ({result['characters']:,} characters): "
                  f"vocabulary {result['vocab_size']:,} -> {result['out_dir']}")


@tokenizer_app.command("stats")
def tokenizer_stats_command(
    corpus: list[str] = typer.Argument(..., help=CORPUS_HELP),
    tokenizer: list[str] = typer.Option(..., "--tokenizer", "-t", help="tokenizer/model folder or alias; repeat"),
    limit: int = typer.Option(None, help="use only the first N texts"),
    as_json: bool = typer.Option(False, "--json", help="print JSON instead of a table"),
) -> None:
    """Compare tokenizers on a corpus: tokens per character and per word (English, Chinese), unknowns, vocab use.

    Example:  oid tokenizer stats demo-out/corpus.txt -t demo-out/tokenizer -t smollm2-135m-instruct
    """
    import json

    from rich.table import Table

    from oidkit.models.tokenizer import tokenizer_stats

    with console.status("tokenizing"):
        stats = tokenizer_stats(corpus, tokenizer, limit=limit)
    if as_json:
        print(json.dumps(stats, ensure_ascii=False, indent=2))
        return
    title = ", ".join(f"{lang}: {c['texts']:,} texts, {c['characters']:,} chars" for lang, c in stats["corpus"].items())
    table = Table("tokenizer", "vocab", "en tok/char", "en tok/word", "zh tok/char", "zh tok/word", "unknown",
                  "lossy texts", "vocab used", title=title)

    def ratio(value: float | None) -> str:
        return "-" if value is None else f"{value:.3f}"

    for name, r in stats["tokenizers"].items():
        en, zh = r["languages"]["en"], r["languages"]["zh"]
        table.add_row(name, f"{r['vocab_size']:,}", ratio(en["tokens_per_char"]), ratio(en["tokens_per_word"]),
                      ratio(zh["tokens_per_char"]), ratio(zh["tokens_per_word"]), f"{r['unknown_tokens']:,}",
                      f"{r['lossy_texts']:,}", f"{r['vocab_used']:,} ({r['vocab_used_fraction']:.0%})")
    Console().print(table)


@app.command("pretrain", context_settings={"allow_interspersed_args": True})
def pretrain_command(
    config: str = typer.Argument(..., help="pretraining recipe YAML, or a packaged one (pretrain_tiny)"),
    overrides: list[str] = typer.Argument(None, help="key=value overrides, e.g. train.max_steps=50"),
    resume: bool = typer.Option(False, "--resume", help="continue from the latest checkpoint in train.output_dir "
                                "(checkpoints are written every train.save_every steps)"),
    device: str = typer.Option(None, help=TRAIN_DEVICE_HELP),
) -> None:
    """Train a small Llama from scratch on plain text (next-token loss); reports loss and validation perplexity.

    The same as `oid train CONFIG ... model.init=scratch`. Writes RUN/final and RUN/best (Hugging Face folders:
    oid viz, evaluate, serve and export load them), RUN/metrics.csv, RUN/loss.png, RUN/summary.json and, with
    train.save_every=N, RUN/checkpoints/step-N that --resume continues from exactly (same losses as an
    uninterrupted run).

    Example:  oid pretrain recipes/pretrain_tiny.yaml train.output_dir=demo-out/pretrain train.max_steps=200
    """
    train_command(config, [*(overrides or []), "model.init=scratch"], resume=resume, nproc_per_node=1,
                  device=device)


viz_app = typer.Typer(help="See inside a model: attention maps, per-token loss, training curves.",
                      no_args_is_help=True)
app.add_typer(viz_app, name="viz")


@viz_app.command("attention")
def viz_attention(
    model: str = typer.Argument(..., help="Llama-architecture model folder, alias or .gguf"),
    text: str = typer.Argument(..., help="the text to look at"),
    out: str = typer.Option(..., "-o", "--out", help="output folder: attention.html, attention_layer_NN.png"),
    max_tokens: int = typer.Option(64, help="only the first N tokens (the page holds layers x heads x N x N values)"),
) -> None:
    """Attention maps per layer and head, as PNGs and one self-contained HTML page to pick layer and head.

    Example:  oid viz attention smollm2-135m-instruct "The capital of France is Paris." -o demo-out/viz
    """
    from oidkit.viz.attention import write_attention

    result = write_attention(model, text, out, max_tokens=max_tokens)
    console.print(f"{result['tokens']} tokens, {result['layers']} layers x {result['heads']} heads -> {result['html']}")


@viz_app.command("tokens")
def viz_tokens(
    model: str = typer.Argument(..., help="Llama-architecture model folder, alias or .gguf"),
    text: str = typer.Argument(None, help="the text to score (or --data and --index)"),
    data: str = typer.Option(None, help="a record file; the record is rendered with the model's chat template"),
    index: int = typer.Option(0, help="which record of --data (0-based)"),
    out: str = typer.Option(..., "-o", "--out", help="output folder: tokens.html, tokens.json"),
) -> None:
    """Colour each token by its loss under the model: where the model is surprised.

    Examples:

      oid viz tokens smollm2-135m-instruct "The capital of France is Paris." -o demo-out/viz

      oid viz tokens demo-out/pretrain/final --data demo-out/val.jsonl --index 3 -o demo-out/viz
    """
    from oidkit.viz.tokens import write_token_loss

    result = write_token_loss(model, out, text=text, data=data, index=index)
    console.print(f"{result['tokens']} tokens, mean loss {result['mean_loss']:.3f} nats -> {result['html']}")


@viz_app.command("curves")
def viz_curves(
    metrics: str = typer.Argument(..., help="a run's metrics.csv (oid train / oid pretrain)"),
    out: str = typer.Option(..., "-o", "--out", help="output folder: curves.png, curves.html"),
) -> None:
    """Training curves: train/eval loss, learning rate, gradient norm, tokens/s.

    Example:  oid viz curves demo-out/pretrain/metrics.csv -o demo-out/viz
    """
    from oidkit.viz.curves import write_curves

    result = write_curves(metrics, out)
    losses = " -> ".join(f"{result[k]:.3f}" for k in ("first_train_loss", "last_train_loss") if result[k] is not None)
    console.print(f"{result['steps']} steps, train loss {losses or 'not logged'} -> {result['html']}")


# --- review ----------------------------------------------------------------------------------------


@app.command("review")
def review_command(
    data: str = typer.Argument(..., metavar="DATA|export", help="records to review (any supported format)"),
    export_data: str = typer.Argument(None, metavar="DATA", help="after `export`: the reviewed records"),
    rejects: str = typer.Option(None, help="rejects JSONL (ingest or curate) to review beside the data"),
    log: str = typer.Option(None, help="review log (default: DATA's name with .review.jsonl, beside it)"),
    out: str = typer.Option(None, "-o", "--out", help="export: output file, format from its suffix"),
    only_accepted: bool = typer.Option(False, help="export: leave out records nobody accepted"),
    host: str = typer.Option("127.0.0.1", help="interface to listen on; other than loopback needs --token"),
    port: int = typer.Option(8765),
    token: str = typer.Option(None, help="secret every request must carry (open the page with ?token=...)"),
    labels: str = typer.Option(None, help="label set: a,b,c or a YAML file with a list; keys 1-9 toggle them"),
    annotator: str = typer.Option(None, help="your name in the log (asked on the page when not given)"),
    sample: int = typer.Option(None, help="assign a random sample of N records (and N rejects) to review"),
    seed: int = typer.Option(0, help="seed of --sample: the same seed gives every annotator the same records"),
    salvage: bool = typer.Option(False, help="read the complete records of a truncated JSON file"),
) -> None:
    """Review records in the browser: browse, search, filter, accept/reject, edit, label; several annotators.

    Every decision is appended (fsynced) to a review log; the input files are never rewritten. Export
    applies the log: edits applied, rejected records out, `meta.review` on every record.

    Examples:

      oid review demo-out/curated/kept.jsonl --rejects demo-out/curated/rejects.jsonl --labels good,unsafe,wrong

      oid review data.jsonl --annotator ana --sample 200 --seed 1

      oid review export demo-out/curated/kept.jsonl --log demo-out/curated/kept.review.jsonl -o reviewed.jsonl
    """
    if data == "export":
        from oidkit.review.export import export_reviewed

        if not export_data or not out:
            fail("usage: oid review export DATA [--log LOG] [--rejects R] -o OUT")
        summary = export_reviewed(export_data, out, log_path=log, rejects=rejects, only_accepted=only_accepted,
                                  salvage=salvage)
        console.print(f"wrote {summary['written']:,} of {summary['items']:,} records ({summary['rejected']:,} rejected "
                      f"out, {summary['restored']:,} rejects restored, {summary['edited']:,} edited) -> {out}")
        return
    if export_data:
        fail(f"unexpected argument {export_data!r}; to export: oid review export DATA -o OUT")
    from oidkit.review.app import serve

    serve(data, rejects=rejects, log_path=log, host=host, port=port, token=token, labels=labels,
          annotator=annotator, sample=sample, seed=seed, salvage=salvage)

@app.command("arena")
def arena_command(
    model_a: str = typer.Argument(..., metavar="MODEL_A|report", help="first model (folder, alias, .gguf)"),
    model_b: str = typer.Argument(..., metavar="MODEL_B|LOG", help="second model; after `report`: the arena log"),
    prompts: str = typer.Option(None, help="prompts: records in any format oid reads (the turns before the last "
                                "answer, e.g. a held-out split); without it, type prompts on the page"),
    limit: int = typer.Option(None, help="only the first N prompts of --prompts"),
    log: str = typer.Option(None, help="vote log (default: PROMPTS's name with .arena.jsonl, beside it)"),
    annotator: str = typer.Option(None, help="your name in the log (asked on the page when not given)"),
    host: str = typer.Option("127.0.0.1", help="interface to listen on; other than loopback needs --token"),
    port: int = typer.Option(8766),
    token: str = typer.Option(None, help="secret every request must carry (open the page with ?token=...)"),
    max_tokens: int = typer.Option(256, help="answer length"),
    temperature: float = typer.Option(0.0, help="0: greedy, the same answers after a restart"),
    endpoint_a: str = typer.Option(None, help="MODEL_A is served at this OpenAI-compatible URL"),
    endpoint_b: str = typer.Option(None, help="MODEL_B is served at this OpenAI-compatible URL"),
    as_json: bool = typer.Option(False, "--json", help="report: print JSON"),
) -> None:
    """Compare two models blind in the browser: same prompt, two answers in random order, you pick A, B, tie
    or both bad. Names are shown only after the vote; votes are appended (fsynced) to a log with who and when.

    Examples:

      oid arena smollm2-135m-instruct demo-out/model --prompts demo-out/curated/splits/test.jsonl --limit 50

      oid arena report demo-out/curated/splits/test.arena.jsonl      # win rates, 95% intervals, agreement
    """
    if model_a == "report":
        import json
        from pathlib import Path

        from oidkit.review.arena import arena_report, report_text
        from oidkit.review.log import ReviewLog

        if not Path(model_b).is_file():
            fail(f"{model_b}: no arena log there; usage: oid arena report LOG")
        report = arena_report(ReviewLog(model_b, read_only=True))
        print(json.dumps(report, indent=2, ensure_ascii=False) if as_json else report_text(report))
        return
    from oidkit.review.arena import serve_arena

    serve_arena(model_a, model_b, prompts=prompts, limit=limit, log_path=log, annotator=annotator, host=host,
                port=port, token=token, max_tokens=max_tokens, temperature=temperature, endpoint_a=endpoint_a,
                endpoint_b=endpoint_b)


# --- synth -----------------------------------------------------------------------------------------

synth_app = typer.Typer(help="Make instruction data with a model: self-instruct, evol, respond.", no_args_is_help=True)
app.add_typer(synth_app, name="synth")

MODEL_HELP = "local model folder / alias, or the model name at --endpoint"
ENDPOINT_FAILURES = ("a request that fails for good becomes a reject (reason request_failed) and the run goes on; "
                     "401/403/404, or 10 failed requests in a row, stop it early")
ENDPOINT_HELP = ("OpenAI-compatible base URL (oid serve, vLLM, a hosted API); key from $OPENAI_API_KEY; "
                 + ENDPOINT_FAILURES)


@synth_app.command("self-instruct", context_settings={"allow_interspersed_args": True})
def synth_self_instruct(
    ctx: typer.Context,
    overrides: list[str] = typer.Argument(None, help=OVERRIDES_HELP),
    config: str = typer.Option(None, "--config", help=CONFIG_HELP),
    seeds: str = typer.Option(None, help="seed tasks JSONL (Self-Instruct / BELLE shape); required"),
    out: str = typer.Option(None, "-o", "--out", help="output folder: synth.jsonl, rejects.jsonl, funnel.json; "
                            "required"),
    model: str = typer.Option(None, help=MODEL_HELP + "; required"),
    endpoint: str = typer.Option(None, help="OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1; "
                                 + ENDPOINT_FAILURES),
    num: int = typer.Option(100, min=1, help="new instructions to keep"),
    language: str = typer.Option("en", help="prompt language: en or zh"),
    requests_per_round: int = typer.Option(5, min=1, help="instruction-generation requests per round"),
    max_rounds: int = typer.Option(50, min=1, help="stop after this many rounds even if fewer were kept"),
    temperature: float = typer.Option(0.7, min=0), top_p: float = typer.Option(0.5, min=0, max=1),
    max_tokens: int = typer.Option(1024, min=1, help="tokens per instruction-generation request"),
    novelty_threshold: float = typer.Option(0.7, min=0, max=1, help="drop when ROUGE-L against the pool exceeds this"),
    instances: bool = typer.Option(True, help="also generate an input/output instance per instruction"),
    instance_max_tokens: int = typer.Option(300, min=1, help="tokens per instance (input and output) generation"),
    concurrency: int = typer.Option(4, min=1, help="parallel requests to --endpoint"),
    seed: int = typer.Option(42),
) -> None:
    """Grow instructions from seed tasks (Self-Instruct), with every filter counted in a funnel.

    Example (a local model; the same with --endpoint http://127.0.0.1:8000/v1 for `oid serve`):

      oid synth self-instruct --seeds ../shared/data/self_instruct_seed_tasks.jsonl \\
          --model smollm2-135m-instruct --num 20 -o synth-out

      oid synth self-instruct --config si.yaml num=50      # si.yaml: {seeds: ..., model: ..., out: ...}
    """
    from oidkit.core.progress import LabelBars
    from oidkit.synth.run import run_self_instruct
    from oidkit.synth.self_instruct import SelfInstructConfig

    s = flag_settings(ctx, config, overrides or [], "self-instruct settings", required=("seeds", "out", "model"))
    settings = SelfInstructConfig(
        num_instructions=s.num, language=s.language, requests_per_round=s.requests_per_round,
        max_rounds=s.max_rounds, temperature=s.temperature, top_p=s.top_p, max_tokens=s.max_tokens,
        novelty_threshold=s.novelty_threshold, generate_instances=s.instances,
        instance_max_tokens=s.instance_max_tokens, seed=s.seed)
    with LabelBars(console, transient=True) as progress:
        result = run_self_instruct(s.seeds, s.out, model=s.model, endpoint=s.endpoint, config=settings,
                                   concurrency=s.concurrency, progress=progress)
    funnel = result.funnel
    console.print(f"generated {funnel['generated']} instructions, dropped {sum(funnel['dropped'].values())} "
                  f"({counts_text(funnel['dropped'])}), kept {funnel['kept_instructions']}; {funnel['records']} "
                  f"records ({funnel['instance_failed']} instances unparsable; failed requests: "
                  f"{counts_text(funnel['request_failed'])}) "
                  f"-> {s.out}/synth.jsonl")
    print_usage(result.usage)


def counts_text(counts: dict) -> str:
    """``{"novelty": 30, "length": 1}`` -> ``novelty 30, length 1`` (``none`` when empty): a funnel as users read it."""
    return ", ".join(f"{name} {count:,}" if isinstance(count, int) else f"{name} {'n/a' if count is None else count}"
                     for name, count in counts.items()) or "none"


def print_usage(usage: dict) -> None:
    """Token and cache totals of a synthesis run."""
    console.print(f"tokens: prompt {usage['prompt_tokens']}, completion {usage['completion_tokens']}; "
                  f"requests {usage['requests']} ({usage['cached']} from cache, {usage['retries']} retries, "
                  f"{usage['failures']} failed for good: rejects.jsonl, reason request_failed)")


@synth_app.command("evol", context_settings={"allow_interspersed_args": True})
def synth_evol(
    ctx: typer.Context,
    data: str = typer.Argument(..., help="records to evolve (any supported format); their first user turn"),
    overrides: list[str] = typer.Argument(None, help=OVERRIDES_HELP),
    config: str = typer.Option(None, "--config", help=CONFIG_HELP),
    out: str = typer.Option(None, "-o", "--out", help="output folder: synth.jsonl, rejects.jsonl, funnel.json; "
                            "required"),
    model: str = typer.Option(None, help=MODEL_HELP + "; required"),
    endpoint: str = typer.Option(None, help=ENDPOINT_HELP),
    rounds: int = typer.Option(3, min=1, help="evolution rounds; each round evolves the survivors of the last"),
    operations: str = typer.Option(
        "all", help="comma-separated subset of add_constraints, deepen, concretise, increase_reasoning, "
        "complicate_input, breadth"),
    limit: int = typer.Option(None, min=1, help="evolve only the first N records"),
    judge_equality: bool = typer.Option(True, help="ask the model whether an evolution added information"),
    concurrency: int = typer.Option(4, min=1), seed: int = typer.Option(42),
) -> None:
    """Evol-Instruct: rewrite instructions into harder (in-depth) or rarer (in-breadth) ones, with lineage.

    Example:  oid synth evol data.jsonl --model smollm2-135m-instruct --rounds 2 --limit 20 -o evol-out
    """
    from oidkit.core.progress import LabelBars
    from oidkit.synth.evol import OPERATIONS, EvolConfig
    from oidkit.synth.run import run_evol

    s = flag_settings(ctx, config, overrides or [], "evol settings", required=("out", "model"))
    chosen = (tuple(OPERATIONS) if s.operations == "all"
              else tuple(o.strip() for o in s.operations.split(",") if o.strip()))
    unknown = set(chosen) - set(OPERATIONS)
    if unknown:
        fail(f"unknown operation(s) {sorted(unknown)}; choose from {', '.join(OPERATIONS)}")
    settings = EvolConfig(rounds=s.rounds, operations=chosen, judge_equality=s.judge_equality, seed=s.seed)
    with LabelBars(console, transient=True) as progress:
        result = run_evol(data, s.out, model=s.model, endpoint=s.endpoint, config=settings, limit=s.limit,
                          concurrency=s.concurrency, progress=progress)
    dropped = result.funnel["dropped"]
    console.print(f"evolved {result.funnel['evolved']}, kept {result.funnel['kept']}, eliminated "
                  f"{sum(dropped.values())} ({counts_text(dropped)}) -> {s.out}/synth.jsonl")
    print_usage(result.usage)


@synth_app.command("respond", context_settings={"allow_interspersed_args": True})
def synth_respond(
    ctx: typer.Context,
    data: str = typer.Argument(..., help="records (any supported format)"),
    overrides: list[str] = typer.Argument(None, help=OVERRIDES_HELP),
    config: str = typer.Option(None, "--config", help=CONFIG_HELP),
    out: str = typer.Option(None, "-o", "--out", help="output folder; required"),
    model: str = typer.Option(None, help=MODEL_HELP + "; required"),
    endpoint: str = typer.Option(None, help=ENDPOINT_HELP),
    regenerate: bool = typer.Option(False, help="also replace existing last answers (kept in meta)"),
    max_tokens: int = typer.Option(512, min=1), concurrency: int = typer.Option(4, min=1),
) -> None:
    """Fill the assistant turn of instruction-only records, or regenerate answers with a chosen model.

    Example:  oid synth respond synth-out/synth.jsonl --model smollm2-135m-instruct -o respond-out
    """
    from oidkit.synth.run import run_respond

    s = flag_settings(ctx, config, overrides or [], "respond settings", required=("out", "model"))
    result = run_respond(data, s.out, model=s.model, endpoint=s.endpoint, regenerate=s.regenerate,
                         max_tokens=s.max_tokens, concurrency=s.concurrency)
    console.print(f"{counts_text(result.funnel)} -> {s.out}/synth.jsonl")
    print_usage(result.usage)


@app.command("annotate", context_settings={"allow_interspersed_args": True})
def annotate_command(
    ctx: typer.Context,
    data: str = typer.Argument(..., help="records to score (any supported format)"),
    overrides: list[str] = typer.Argument(None, help=OVERRIDES_HELP),
    config: str = typer.Option(None, "--config", help=CONFIG_HELP),
    out: str = typer.Option(None, "-o", "--out", help="output folder; required"),
    model: str = typer.Option(None, help="judge: " + MODEL_HELP + "; required"),
    endpoint: str = typer.Option(None, help=ENDPOINT_HELP),
    rubric: str = typer.Option(None, help="a rubric file with a {conversation} placeholder (default: AlpaGasus-style)"),
    concurrency: int = typer.Option(4, min=1),
) -> None:
    """Score each record with a judge model (1-5 + rationale + follows-instruction) into meta.score.

    Curate on it afterwards with the recipe step `{op: min_score, min: 4}`.
    Example:  oid annotate data.jsonl --model smollm2-135m-instruct -o annotated
    """
    from oidkit.synth.run import run_annotate

    s = flag_settings(ctx, config, overrides or [], "annotate settings", required=("out", "model"))
    result = run_annotate(data, s.out, model=s.model, endpoint=s.endpoint, rubric_file=s.rubric,
                          concurrency=s.concurrency)
    console.print(f"{counts_text(result.funnel)} -> {s.out}/synth.jsonl")
    print_usage(result.usage)


def main() -> None:
    """Console-script entry point; errors become messages in :class:`ClearErrors`."""
    app()


if __name__ == "__main__":
    main()
