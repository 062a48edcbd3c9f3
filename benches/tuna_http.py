"""The HTTP side the benchmark scripts share: a free loopback port, `tuna serve` started on one,
and JSON calls to it.

Python 3.11 standard library only.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import time
import urllib.request

DEADLINE = 30.0  # seconds any one request may take before the run is declared hung


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(binary: str, data: str) -> tuple[subprocess.Popen, int]:
    """`tuna serve` (no GPUs) on a free loopback port over `data`, once it answers /readyz."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUNA_")}
    proc = subprocess.Popen([binary, "serve", "--listen", f"127.0.0.1:{port}", "--gpus", "none",
                             "--data-dir", data], env=env, stderr=subprocess.DEVNULL)
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1)
            return proc, port
        except OSError:
            time.sleep(0.1)
    raise SystemExit("the server did not become ready")


class Api:
    """JSON calls over one keep-alive HTTP/1.1 connection; a request past DEADLINE ends the run."""

    def __init__(self, port: int):
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=DEADLINE)

    def call(self, method: str, path: str, body=None, expect: int = 200):
        data = None if body is None else json.dumps(body).encode()  # bytes: headers+body in one send
        try:
            self.conn.request(method, path, body=data, headers={"Content-Type": "application/json"})
            resp = self.conn.getresponse()
            raw = resp.read()
        except (TimeoutError, socket.timeout) as e:
            raise SystemExit(f"HUNG: {method} {path} got no answer within {DEADLINE} s ({e})")
        if resp.status != expect:
            raise SystemExit(f"{method} {path}: HTTP {resp.status} (expected {expect}): {raw[:500]!r}")
        if raw and resp.getheader("content-type", "").startswith("application/json"):
            return json.loads(raw)
        return raw
