#!/usr/bin/env python3
"""Benchmark of the dashboard with a big experiment: how long the experiment page of an ask/tell
experiment with --trials trials (default 10,000) takes to be complete in headless Chromium.

A benchmark, not a test: it prints the figures and the ratio to the target (2 s) and asserts
nothing but that the server and the browser answered. "Complete" is the page's own mark
(`window.tunaFirstDraw`, ms since navigation start): every plot, the trial table and the
promotions drawn from the first round of API answers. The browser is driven over the DevTools
protocol on a pipe (fds 3 and 4), so nothing beyond the standard library and Chromium is needed.
Also printed: the size and latency of each API answer the page reads.

    cargo build --release
    python3 benches/dashboard_load.py --tuna target/release/tuna [--trials 10000] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tuna_http import Api, start_server  # noqa: E402

TARGET_SECONDS = 2.0
CHROMIUM = "/usr/bin/chromium"
BATCH = 1000  # trials asked (and told) at once


def fill(api: Api, trials: int) -> None:
    doc = {"apiVersion": "tuna.dev/v1alpha1", "kind": "Experiment", "metadata": {"name": "big"},
           "spec": {"objective": {"metric": "value", "goal": "minimize"},
                    "algorithm": {"name": "random", "seed": 1}, "maxTrials": trials,
                    "parallelTrials": BATCH, "executor": "external",
                    "parameters": [{"name": "x", "type": "double", "min": -5, "max": 5},
                                   {"name": "lr", "type": "double", "min": 1e-5, "max": 1, "scale": "log"},
                                   {"name": "opt", "type": "categorical", "values": ["sgd", "adam", "rmsprop"]}]}}
    api.call("POST", "/api/v1/experiments", doc, expect=201)
    rng = random.Random(1)
    told = 0
    while told < trials:
        batch = api.call("POST", "/api/v1/experiments/big/suggestions", {"count": BATCH})["trials"]
        if not batch:
            break
        for t in batch:
            x = t["parameters"]["x"]
            value = x * x + rng.random()
            api.call("POST", f"/api/v1/experiments/big/trials/{t['name']}/complete", {"metrics": {"value": value}})
            told += 1
    print(f"{told} trials told", file=sys.stderr)


class Browser:
    """Headless Chromium with the DevTools protocol on fds 3 (to it) and 4 (from it)."""

    def __init__(self, profile: str):
        to_r, self.to_w = os.pipe()
        self.from_r, from_w = os.pipe()
        os.set_inheritable(to_r, True)
        os.set_inheritable(from_w, True)
        args = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--remote-debugging-pipe", "--window-size=1280,2000", f"--user-data-dir={profile}", "about:blank"]
        # dup2 the pipe ends onto 3 and 4 in the child.
        self.proc = subprocess.Popen(["sh", "-c", f'exec "$0" "$@" 3<&{to_r} 4>&{from_w}', *args],
                                     pass_fds=(to_r, from_w), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_r)
        os.close(from_w)
        self.buf, self.next = b"", 0
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]

    def call(self, method: str, params: dict, session: str | None = None) -> dict:
        self.next += 1
        message = {"id": self.next, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self.to_w, json.dumps(message).encode() + b"\0")
        while True:
            while b"\0" not in self.buf:
                chunk = os.read(self.from_r, 1 << 16)
                if not chunk:
                    raise SystemExit("Chromium closed the DevTools pipe")
                self.buf += chunk
            raw, self.buf = self.buf.split(b"\0", 1)
            answer = json.loads(raw)
            if answer.get("id") == self.next:
                if "error" in answer:
                    raise SystemExit(f"{method}: {answer['error']}")
                return answer["result"]

    def eval(self, expression: str):
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True}, self.session)
        return result["result"].get("value")

    def load(self, url: str) -> float:
        """Milliseconds from navigation start to the page's first complete draw."""
        self.call("Page.navigate", {"url": url}, self.session)
        deadline = time.time() + 120
        while time.time() < deadline:
            value = self.eval(f"location.href === {json.dumps(url)} ? window.tunaFirstDraw : undefined")
            if isinstance(value, (int, float)):
                return float(value)
            time.sleep(0.05)
        raise SystemExit(f"{url} never finished drawing")

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()


def answer_sizes(port: int) -> list[tuple[str, float, float]]:
    rows = []
    base = f"http://127.0.0.1:{port}/api/v1/experiments/big"
    for path in ["", "/plots/history", "/plots/parameters", "/plots/importance", "/plots/intermediate",
                 "/trials?limit=10000", "/promotions"]:
        start = time.perf_counter()
        body = urllib.request.urlopen(base + path, timeout=60).read()
        rows.append((path or "/", len(body) / 1e6, (time.perf_counter() - start) * 1000))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tuna", default="target/release/tuna")
    parser.add_argument("--trials", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    if not os.access(CHROMIUM, os.X_OK):
        raise SystemExit(f"needs Chromium at {CHROMIUM} (apt-get install -y chromium)")
    with tempfile.TemporaryDirectory() as work:
        server, port = start_server(args.tuna, os.path.join(work, "data"))
        try:
            fill(Api(port), args.trials)
            for path, mb, ms in answer_sizes(port):
                print(f"GET …/big{path:<22} {mb:8.2f} MB {ms:8.0f} ms")
            browser = Browser(os.path.join(work, "profile"))
            try:
                url = f"http://127.0.0.1:{port}/experiments/big"
                times = [browser.load(url) for _ in range(args.runs)]
                fetched = browser.eval("JSON.stringify(performance.getEntriesByType('resource')"
                                       ".filter((e) => e.name.includes('/api/')).slice(0, 7)"
                                       ".map((e) => [e.name.split('/big')[1] || '/', e.startTime, e.responseEnd]))")
                for path, start, end in json.loads(fetched):
                    print(f"  in the page: {path:<28} requested at {start:6.0f} ms, answered by {end:6.0f} ms")
            finally:
                browser.close()
        finally:
            server.terminate()
            server.wait()
    median = statistics.median(times) / 1000
    print(f"experiment page with {args.trials} trials complete in {median:.2f} s (median of {args.runs}: "
          + ", ".join(f"{t / 1000:.2f}" for t in times) + f"); target {TARGET_SECONDS} s, ratio {median / TARGET_SECONDS:.2f}")


if __name__ == "__main__":
    main()
