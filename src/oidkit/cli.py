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

synth_app = typer.Typer(help="Make instruction data with a model: Self-Instruct, ...", no_args_is_help=True)
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

    from oidkit.synth.self_instruct import SelfInstructConfig, run_self_instruct

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
    console.print(f"tokens: prompt {result.usage['prompt_tokens']}, completion {result.usage['completion_tokens']}, "
                  f"cached answers {result.usage['cached']}")


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
