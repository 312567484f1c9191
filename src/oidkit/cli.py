"""The ``oid`` command line: parse arguments, call one library function, print the result.

Nothing here does real work: every command is a thin wrapper over a function in ``oidkit.<area>``
so that everything is usable from Python too. Library imports happen inside the commands so that
``oid --help`` stays instant and curating data never pays for importing torch.
"""

from __future__ import annotations

import typer
from rich.console import Console

from oidkit import __version__

app = typer.Typer(
    name="oid",
    help="oidkit: open instruction datasets -> curated data -> tuned, evaluated, served model.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_show_locals=False,
)
console = Console(stderr=True)


def fail(message: str, code: int = 2) -> None:
    """Print an error for the user and exit with ``code``."""
    console.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


@app.command()
def version() -> None:
    """Print the oidkit version."""
    print(__version__)


# --- ingest: convert / inspect / validate ----------------------------------------------------------

# --- curate ----------------------------------------------------------------------------------------

# --- report ----------------------------------------------------------------------------------------

# --- models / train / export -----------------------------------------------------------------------

# --- evaluate / serve / chat -----------------------------------------------------------------------

# --- theory: tokenizer / pretrain / viz --------------------------------------------------------------

# --- review ----------------------------------------------------------------------------------------

# --- synth -----------------------------------------------------------------------------------------

synth_app = typer.Typer(help="Make instruction data with a model: self-instruct, evol, respond.", no_args_is_help=True)
app.add_typer(synth_app, name="synth")


@synth_app.command("self-instruct")
def synth_self_instruct(
    seeds: str = typer.Option(..., help="seed tasks JSONL (Self-Instruct / BELLE shape)"),
    out: str = typer.Option(..., "-o", "--out", help="output folder: synth.jsonl, rejects.jsonl, funnel.json"),
    model: str = typer.Option(..., help="local model folder / alias, or the model name at --endpoint"),
    endpoint: str = typer.Option(None, help="OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1"),
    num: int = typer.Option(100, help="new instructions to keep"),
    language: str = typer.Option("en", help="prompt language: en or zh"),
    requests_per_round: int = typer.Option(5, help="instruction-generation requests per round"),
    max_rounds: int = typer.Option(50, help="stop after this many rounds even if fewer were kept"),
    temperature: float = typer.Option(0.7), top_p: float = typer.Option(0.5),
    max_tokens: int = typer.Option(1024, help="tokens per instruction-generation request"),
    novelty_threshold: float = typer.Option(0.7, help="drop when ROUGE-L against the pool exceeds this"),
    instances: bool = typer.Option(True, help="also generate an input/output instance per instruction"),
    concurrency: int = typer.Option(4, help="parallel requests to --endpoint"),
    seed: int = typer.Option(42),
) -> None:
    """Grow instructions from seed tasks (Self-Instruct), with every filter counted in a funnel.

    Example (a local model; the same with --endpoint http://127.0.0.1:8000/v1 for `oid serve`):

      oid synth self-instruct --seeds ../shared/data/self_instruct_seed_tasks.jsonl \\
          --model smollm2-135m-instruct --num 20 -o synth-out
    """
    from rich.progress import Progress

    from oidkit.synth.run import run_self_instruct
    from oidkit.synth.self_instruct import SelfInstructConfig

    config = SelfInstructConfig(num_instructions=num, language=language, requests_per_round=requests_per_round,
                                max_rounds=max_rounds, temperature=temperature, top_p=top_p, max_tokens=max_tokens,
                                novelty_threshold=novelty_threshold, generate_instances=instances, seed=seed)
    with Progress(console=console, transient=True) as bar:
        task = bar.add_task("instructions kept", total=num)
        result = run_self_instruct(seeds, out, model=model, endpoint=endpoint, config=config,
                                   concurrency=concurrency, progress=lambda n: bar.update(task, completed=n))
    funnel = result.funnel
    console.print(f"generated {funnel['generated']} instructions, dropped {funnel['dropped']}, "
                  f"kept {funnel['kept_instructions']}; {funnel['records']} records "
                  f"({funnel['instance_failed']} instances unparsable) -> {out}/synth.jsonl")
    print_usage(result.usage)


def print_usage(usage: dict) -> None:
    """Token and cache totals of a synthesis run."""
    console.print(f"tokens: prompt {usage['prompt_tokens']}, completion {usage['completion_tokens']}; "
                  f"requests {usage['requests']} ({usage['cached']} from cache, {usage['retries']} retries)")


MODEL_HELP = "local model folder / alias, or the model name at --endpoint"
ENDPOINT_HELP = "OpenAI-compatible base URL (oid serve, vLLM, a hosted API); key from $OPENAI_API_KEY"


@synth_app.command("evol")
def synth_evol(
    data: str = typer.Argument(..., help="records to evolve (any supported format); their first user turn"),
    out: str = typer.Option(..., "-o", "--out", help="output folder: synth.jsonl, rejects.jsonl, funnel.json"),
    model: str = typer.Option(..., help=MODEL_HELP),
    endpoint: str = typer.Option(None, help=ENDPOINT_HELP),
    rounds: int = typer.Option(3, help="evolution rounds; each round evolves the survivors of the last"),
    operations: str = typer.Option(
        "all", help="comma-separated subset of add_constraints, deepen, concretise, increase_reasoning, "
        "complicate_input, breadth"),
    limit: int = typer.Option(None, help="evolve only the first N records"),
    judge_equality: bool = typer.Option(True, help="ask the model whether an evolution added information"),
    concurrency: int = typer.Option(4), seed: int = typer.Option(42),
) -> None:
    """Evol-Instruct: rewrite instructions into harder (in-depth) or rarer (in-breadth) ones, with lineage.

    Example:  oid synth evol data.jsonl --model smollm2-135m-instruct --rounds 2 --limit 20 -o evol-out
    """
    from oidkit.synth.evol import OPERATIONS, EvolConfig
    from oidkit.synth.run import run_evol

    chosen = tuple(OPERATIONS) if operations == "all" else tuple(o.strip() for o in operations.split(",") if o.strip())
    unknown = set(chosen) - set(OPERATIONS)
    if unknown:
        fail(f"unknown operation(s) {sorted(unknown)}; choose from {', '.join(OPERATIONS)}")
    config = EvolConfig(rounds=rounds, operations=chosen, judge_equality=judge_equality, seed=seed)
    result = run_evol(data, out, model=model, endpoint=endpoint, config=config, limit=limit,
                      concurrency=concurrency)
    console.print(f"evolved {result.funnel['evolved']}, kept {result.funnel['kept']}, "
                  f"eliminated {result.funnel['dropped']} -> {out}/synth.jsonl")
    print_usage(result.usage)


@synth_app.command("respond")
def synth_respond(
    data: str = typer.Argument(..., help="records (any supported format)"),
    out: str = typer.Option(..., "-o", "--out"),
    model: str = typer.Option(..., help=MODEL_HELP),
    endpoint: str = typer.Option(None, help=ENDPOINT_HELP),
    regenerate: bool = typer.Option(False, help="also replace existing last answers (kept in meta)"),
    max_tokens: int = typer.Option(512), concurrency: int = typer.Option(4),
) -> None:
    """Fill the assistant turn of instruction-only records, or regenerate answers with a chosen model.

    Example:  oid synth respond synth-out/synth.jsonl --model smollm2-135m-instruct -o respond-out
    """
    from oidkit.synth.run import run_respond

    result = run_respond(data, out, model=model, endpoint=endpoint, regenerate=regenerate, max_tokens=max_tokens,
                         concurrency=concurrency)
    console.print(f"{result.funnel} -> {out}/synth.jsonl")
    print_usage(result.usage)


@app.command("annotate")
def annotate_command(
    data: str = typer.Argument(..., help="records to score (any supported format)"),
    out: str = typer.Option(..., "-o", "--out"),
    model: str = typer.Option(..., help="judge: " + MODEL_HELP),
    endpoint: str = typer.Option(None, help=ENDPOINT_HELP),
    rubric: str = typer.Option(None, help="a rubric file with a {conversation} placeholder (default: AlpaGasus-style)"),
    concurrency: int = typer.Option(4),
) -> None:
    """Score each record with a judge model (1-5 + rationale + follows-instruction) into meta.score.

    Curate on it afterwards with the recipe step `{op: min_score, min: 4}`.
    Example:  oid annotate data.jsonl --model smollm2-135m-instruct -o annotated
    """
    from oidkit.synth.run import run_annotate

    result = run_annotate(data, out, model=model, endpoint=endpoint, rubric_file=rubric, concurrency=concurrency)
    console.print(f"{result.funnel} -> {out}/synth.jsonl")
    print_usage(result.usage)


def main() -> None:
    """Console-script entry point: user mistakes print as messages, our own bugs as tracebacks."""
    from oidkit.errors import OidError

    try:
        app()
    except OidError as e:
        console.print(f"[bold red]error:[/] {e}")
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
