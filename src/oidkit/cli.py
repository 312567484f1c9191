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
