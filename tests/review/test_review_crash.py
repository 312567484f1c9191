"""Killing the review server with SIGKILL in the middle of a burst of edits loses nothing it acknowledged."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import httpx
import pytest

from conftest import free_port, readable_lines
from oidkit.io import write_jsonl

pytestmark = pytest.mark.slow

RECORDS = 40
MAX_REQUESTS = 2000  # the burst is bounded even if the kill never came


def start_server(data, log, port: int) -> tuple[subprocess.Popen, httpx.Client]:
    process = subprocess.Popen([sys.executable, "-m", "oidkit.cli", "review", str(data), "--log", str(log),
                                "--port", str(port), "--annotator", "ana"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Origin": f"http://127.0.0.1:{port}"},
                          timeout=10)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited: {process.stderr.read().decode()}")
        try:
            if client.get("/api/meta").status_code == 200:
                return process, client
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("server did not start within 60 s")


def test_sigkill_during_a_burst_keeps_every_acknowledged_edit(tmp_path):
    data, log = tmp_path / "data.jsonl", tmp_path / "data.review.jsonl"
    write_jsonl(data, [{"id": f"r{i}", "messages": [{"role": "user", "content": f"q{i}"},
                                                    {"role": "assistant", "content": f"a{i}"}]}
                       for i in range(RECORDS)])
    process, client = start_server(data, log, free_port())
    acknowledged: dict[str, tuple[int, str]] = {}  # key -> (version, assistant text) of the last acknowledged edit
    acknowledged_seqs: dict[int, dict] = {}  # every acknowledged log line, edits and decisions

    def burst() -> None:
        for n in range(MAX_REQUESTS):
            key = f"r{n % RECORDS}"
            text = f"edit {n}"
            base = acknowledged.get(key, (0, ""))[0]
            try:
                edit = client.post("/api/edit", json={"key": key, "annotator": "ana", "base": base, "messages": [
                    {"role": "user", "content": f"q{n % RECORDS}"}, {"role": "assistant", "content": text}]})
                if edit.status_code == 200:
                    acknowledged[key] = (edit.json()["seq"], text)
                    acknowledged_seqs[edit.json()["seq"]] = edit.json()
                decision = client.post("/api/decision", json={"key": key, "annotator": "ana",
                                                              "decision": "accept" if n % 2 else "reject"})
                if decision.status_code == 200:
                    acknowledged_seqs[decision.json()["seq"]] = decision.json()
            except httpx.TransportError:
                return

    sender = threading.Thread(target=burst)
    sender.start()
    while len(acknowledged) < RECORDS and sender.is_alive():  # kill once every record has been edited at least once
        time.sleep(0.01)
    os.kill(process.pid, signal.SIGKILL)
    sender.join(timeout=30)
    process.wait(timeout=10)
    assert len(acknowledged) == RECORDS, "the burst ended before the kill"

    process, client = start_server(data, log, free_port())
    try:
        logged = {line["seq"]: line for line in readable_lines(log)}
        for seq, event in acknowledged_seqs.items():
            assert logged[seq] == event
        for key, (version, _) in acknowledged.items():
            # the edit in flight at the kill may have been written without its answer arriving: latest wins
            latest = max((e for e in logged.values() if e["key"] == key and e["action"] == "edit"),
                         key=lambda e: e["seq"])
            assert latest["seq"] >= version
            item = client.get("/api/item", params={"key": key}).json()
            assert item["version"] == latest["seq"]
            assert item["record"]["messages"] == latest["messages"]
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=10)
