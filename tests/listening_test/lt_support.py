"""Helpers for the listening-test tests: tiny stimuli sets, a live server process, an HTTP client.

Stimuli are short synthetic WAV files written into temporary folders (never committed); the
server is the real command line (``python -m listening_test serve``) on 127.0.0.1 with a port
the operating system picks.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from mastering.evaluation.listening_manifest import write_manifest

REPO_ROOT = Path(__file__).resolve().parents[2]
ADMIN_TOKEN = "test-admin-token-0123456789"
CONDITIONS = ("original", "adaptive_semantic_eq", "floweq_style", "static_eq")


def make_stimuli(root: Path, items=("item01", "item02"), targets=("warm", "bright"),
                 conditions=CONDITIONS, duration_s: float = 0.4, sample_rate: int = 22050) -> Path:
    """Write a small stimuli set (distinct tones per file) and its manifest; returns ``root``."""
    rows = []
    t = np.arange(int(duration_s * sample_rate)) / sample_rate
    fade = np.minimum(1.0, np.minimum(t, t[::-1]) / 0.01)
    for i, item in enumerate(items):
        for j, condition in enumerate(conditions):
            for k, target in enumerate(targets):
                rel = f"original/{item}.wav" if condition == "original" else f"{condition}/{target}/{item}.wav"
                path = root / rel
                if not path.exists():
                    path.parent.mkdir(parents=True, exist_ok=True)
                    f0 = 220.0 * (1 + i) * (1 + 0.1 * j + 0.03 * k)
                    x = 0.2 * np.sin(2 * np.pi * f0 * t) * fade
                    sf.write(path, np.stack([x, x], axis=1).astype(np.float32), sample_rate, subtype="PCM_16")
                rows.append({"item": item, "condition": condition, "target": target, "path": rel,
                             "placeholder": 1})
    write_manifest(root, rows, ["item", "condition", "target", "path", "placeholder"])
    return root


class LiveServer:
    """``python -m listening_test serve`` as a child process of the test."""

    def __init__(self, stimuli: Path, db: Path, log_dir: Path, extra_args=()):
        self.stimuli, self.db, self.log_dir = Path(stimuli), Path(db), Path(log_dir)
        self.extra_args = list(extra_args)
        self.proc: subprocess.Popen | None = None
        self.port: int | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, port: int = 0, timeout_s: float = 30.0) -> "LiveServer":
        self.starts += 1
        log = open(self.log_dir / f"server-{self.starts}.log", "wb")
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "listening_test", "serve", "--stimuli", str(self.stimuli),
             "--db", str(self.db), "--host", "127.0.0.1", "--port", str(port),
             "--admin-token", ADMIN_TOKEN, *self.extra_args],
            cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=log,
        )
        log.close()
        line: list[bytes] = []
        reader = threading.Thread(target=lambda: line.append(self.proc.stdout.readline()), daemon=True)
        reader.start()
        reader.join(timeout_s)
        text = line[0].decode() if line else ""
        match = re.search(r"listening on http://127\.0\.0\.1:(\d+)/", text)
        if not match:
            self.kill()
            log_text = (self.log_dir / f"server-{self.starts}.log").read_text(errors="replace")
            raise RuntimeError(f"server did not start: {text!r}\n{log_text}")
        self.port = int(match.group(1))
        return self

    def kill(self) -> None:
        """SIGKILL: a crash, with no chance to clean up."""
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        if self.proc and self.proc.stdout:
            self.proc.stdout.close()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
        if self.proc and self.proc.stdout:
            self.proc.stdout.close()

    def restart(self, timeout_s: float = 30.0) -> "LiveServer":
        """Kill the server and start it again on the same port and database."""
        port = self.port
        self.kill()
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                return self.start(port=port, timeout_s=timeout_s)
            except RuntimeError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)


class ApiClient:
    """One simulated participant (or the admin) over HTTP/1.1 keep-alive, stdlib only."""

    def __init__(self, port: int, timeout_s: float = 30.0):
        self.port = port
        self.timeout_s = timeout_s
        self.cookie: str | None = None
        self.conn: http.client.HTTPConnection | None = None

    def request(self, method: str, path: str, body=None, headers=None, raw: bytes | None = None):
        """Returns ``(status, parsed JSON or text, headers)``; reconnects once on a dropped connection."""
        hdrs = dict(headers or {})
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
            hdrs["Content-Type"] = "application/json"
        if self.cookie:
            hdrs["Cookie"] = self.cookie
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout_s)
            try:
                self.conn.request(method, path, body=data, headers=hdrs)
                resp = self.conn.getresponse()
                payload = resp.read()
                break
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.conn.close()
                self.conn = None
                if attempt:
                    raise
        set_cookie = resp.getheader("Set-Cookie")
        if set_cookie:
            self.cookie = set_cookie.split(";", 1)[0]
        ctype = resp.getheader("Content-Type", "")
        parsed = json.loads(payload) if ctype.startswith("application/json") else payload.decode(errors="replace")
        return resp.status, parsed, dict(resp.getheaders())

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def answer_for(trial: dict, k: int) -> int:
    """What a careful participant answers: the fixed number on attention checks, else anything."""
    match = re.search(r"please select (\d)", trial.get("instruction", ""))
    return int(match.group(1)) if match else 1 + (k * 3 + trial["id"]) % 7
