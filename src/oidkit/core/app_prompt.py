"""The system prompt an application model was tuned and evaluated with, stored beside its exported weights.

``oid app run`` writes ``MODEL/oidkit_app.json``; ``oid serve`` reads it and puts that prompt first in any
chat request that brings no system message of its own, so the served model is the evaluated one.
"""

from __future__ import annotations

import json
from pathlib import Path

from oidkit.atomic import write_atomic

APP_PROMPT_FILE = "oidkit_app.json"


def write_app_prompt(model_dir: str | Path, app: str, system_prompt: str) -> Path:
    path = Path(model_dir) / APP_PROMPT_FILE
    write_atomic(path, json.dumps({"app": app, "system_prompt": system_prompt}, ensure_ascii=False, indent=2))
    return path


def read_app_prompt(model_dir: str | Path) -> str | None:
    """The stored system prompt, or None for a model that no application produced."""
    path = Path(model_dir) / APP_PROMPT_FILE
    return json.loads(path.read_text(encoding="utf-8"))["system_prompt"] if path.is_file() else None
