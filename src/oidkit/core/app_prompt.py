"""The system prompt an application model was tuned and evaluated with, stored beside its exported weights.

``oid app run`` has the export write ``MODEL/oidkit_app.json`` into the folder before it is published;
``oid serve`` reads it and puts that prompt first in any chat request that brings no system message of its
own, so the served model is the evaluated one.
"""

from __future__ import annotations

import json
from pathlib import Path

from oidkit.errors import InputError

APP_PROMPT_FILE = "oidkit_app.json"


def app_prompt_file(app: str, system_prompt: str) -> dict[str, str]:
    """``{file name: text}`` of the stored prompt, for ``models.export.export_run(files=...)``."""
    return {APP_PROMPT_FILE: json.dumps({"app": app, "system_prompt": system_prompt}, ensure_ascii=False, indent=2)}


def read_app_prompt(model_dir: str | Path) -> str | None:
    """The stored system prompt, or None for a model that no application produced."""
    path = Path(model_dir) / APP_PROMPT_FILE
    if not path.is_file():
        return None
    try:
        prompt = json.loads(path.read_text(encoding="utf-8"))["system_prompt"]
    except (ValueError, KeyError, TypeError) as error:  # edited by hand, truncated: not the file an export writes
        prompt = error
    if not isinstance(prompt, str):
        raise InputError(f"not an application prompt file: it needs a JSON object with a \"system_prompt\" string "
                         f"({type(prompt).__name__}: {prompt})", file=str(path),
                         hint="export the model again (oid app run, oid export), or delete the file to serve the "
                              "model without a default system prompt")
    return prompt
