#!/usr/bin/env python3
"""Benchmark of what one dashboard poll costs while a run is live: the bytes of the plot answers
(and the time to get them) with the page's old way of polling beside its new one, against the same
server in the same script run.

- before: every poll GETs the four plot routes and the trial table (`…/trials`) whole (what app.js did until the plot routes had
  an ETag and `since`);
- after: every poll sends each plot's last ETag in If-None-Match (304, no body, while nothing
  changed) and asks the curves and the parameters with `?since=<last revision>` (only the trials
  changed since), and the trial table with `?since=` too, as app.js does now.

The experiment is ask/tell (no trial programs): --trials trials, each with --steps reports of its
objective metric; all but --running of them told; then, for --rounds polls, each running trial
reports one more step before the poll (a live run between two polls), and a last round polls
with nothing written since the previous poll (trials running, between reports). Bytes are the
response bodies only (headers are a few hundred bytes either way). A benchmark: it prints, it asserts only that the server answered.

    cargo build --release
    python3 benches/dashboard_poll.py --tuna target/release/tuna [--trials 1000] [--steps 20]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tuna_http import Api, start_server  # noqa: E402

PLOTS = ["history", "parameters", "importance", "intermediate"]
BASE = "/api/v1/experiments/live/plots"
TRIALS = "/api/v1/experiments/live/trials"
ASK_MAX = 1000  # the suggestions route's most trials per ask


def fill(api: Api, trials: int, steps: int, running: int) -> list[str]:
    doc = {"apiVersion": "tuna.dev/v1alpha1", "kind": "Experiment", "metadata": {"name": "live"},
           "spec": {"objective": {"metric": "value", "goal": "minimize"},
                    "algorithm": {"name": "random", "seed": 1}, "maxTrials": trials,
                    "parallelTrials": trials, "executor": "external",
                    "parameters": [{"name": "x", "type": "double", "min": -5, "max": 5},
                                   {"name": "lr", "type": "double", "min": 1e-5, "max": 1, "scale": "log"}]}}
    api.call("POST", "/api/v1/experiments", doc, expect=201)
    names: list[str] = []
    while len(names) < trials:  # an ask takes at most ASK_MAX
        count = min(ASK_MAX, trials - len(names))
        names += [t["name"] for t in api.call("POST", "/api/v1/experiments/live/suggestions", {"count": count})["trials"]]
    for i, name in enumerate(names):
        for step in range(1, steps + 1):
            api.call("POST", f"/api/v1/experiments/live/trials/{name}/report",
                     {"step": step, "metrics": {"value": 1.0 / step + i * 1e-4}})
        if i >= running:
            api.call("POST", f"/api/v1/experiments/live/trials/{name}/complete", {"metrics": {"value": 1.0 / steps}})
    return names[:running]


class Poller:
    """One HTTP/1.1 connection; GETs with optional headers, counting body bytes."""

    def __init__(self, port: int):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def get(self, path: str, headers: dict) -> tuple[int, dict[str, str], bytes]:
        self.conn.request("GET", path, headers=headers)
        resp = self.conn.getresponse()
        body = resp.read()
        if resp.status not in (200, 304):
            raise SystemExit(f"GET {path}: HTTP {resp.status}: {body[:300]!r}")
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, body


def all_trials(poller: Poller) -> tuple[int, str]:
    """The trial table's full read, page by page: (bytes, the first page's revision)."""
    sent, after, revision = 0, "", None
    while True:
        _, _, body = poller.get(f"{TRIALS}?limit=10000{after}", {})
        sent += len(body)
        page = json.loads(body)
        revision = revision or page.get("revision")
        if page.get("next") is None:
            return sent, revision
        after = f"&after={page['next']}"


def poll_before(poller: Poller) -> int:
    plots = sum(len(poller.get(f"{BASE}/{plot}", {})[2]) for plot in PLOTS)
    return plots + all_trials(poller)[0]


class PageAfter:
    """The page's new polling: ETags kept per plot, curves and coordinates asked since the last revision."""

    def __init__(self, poller: Poller):
        self.poller, self.etags, self.revisions = poller, {}, {}

    def poll(self) -> int:
        sent = 0
        for plot in ["history", "importance"]:
            path = f"{BASE}/{plot}"
            headers = {"If-None-Match": self.etags[path]} if path in self.etags else {}
            _, got, body = self.poller.get(path, headers)
            self.etags[path] = got.get("etag", self.etags.get(path))
            sent += len(body)
        for plot in ["parameters", "intermediate"]:
            revision = self.revisions.get(plot)
            path = f"{BASE}/{plot}" + (f"?since={revision}" if revision else "")
            headers = {"If-None-Match": f'"{revision}"'} if revision else {}
            status, _, body = self.poller.get(path, headers)
            if status == 200:
                self.revisions[plot] = json.loads(body)["revision"]
            sent += len(body)
        # The trial table: only the trials changed since its last revision.
        revision = self.revisions.get("trials")
        if revision:
            _, _, body = self.poller.get(f"{TRIALS}?since={revision}", {})
            answer = json.loads(body)
            sent += len(body)
            if answer.get("full") is False:
                self.revisions["trials"] = answer["revision"]
                return sent
        more, self.revisions["trials"] = all_trials(self.poller)
        return sent + more


def timed(poll) -> tuple[int, float]:
    start = time.perf_counter()
    sent = poll()
    return sent, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tuna", default="target/release/tuna")
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--running", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as data:
        proc, port = start_server(args.tuna, data)
        try:
            api = Api(port)
            running = fill(api, args.trials, args.steps, args.running)
            poller = Poller(port)
            after = PageAfter(poller)
            after.poll()  # the page's first, full read
            rows = []
            for r in range(args.rounds):
                for name in running:
                    api.call("POST", f"/api/v1/experiments/live/trials/{name}/report",
                             {"step": args.steps + 1 + r, "metrics": {"value": 0.01}})
                rows.append((timed(lambda: poll_before(poller)), timed(after.poll)))
            idle = (timed(lambda: poll_before(poller)), timed(after.poll))
        finally:
            proc.terminate()
            proc.wait()
    before_bytes = statistics.median(b[0] for b, _ in rows)
    after_bytes = statistics.median(a[0] for _, a in rows)
    before_s = statistics.median(b[1] for b, _ in rows)
    after_s = statistics.median(a[1] for _, a in rows)
    print(f"{args.trials} trials × {args.steps} steps, {args.running} running, one step each per poll; "
          f"median of {args.rounds} polls")
    print(f"live poll   before: {before_bytes:>10,.0f} bytes {before_s * 1000:8.1f} ms")
    print(f"live poll   after:  {after_bytes:>10,.0f} bytes {after_s * 1000:8.1f} ms"
          f"   ({before_bytes / max(after_bytes, 1):.1f}× fewer bytes)")
    (ib, it), (ab, at) = idle
    print(f"idle poll   before: {ib:>10,} bytes {it * 1000:8.1f} ms")
    print(f"idle poll   after:  {ab:>10,} bytes {at * 1000:8.1f} ms   (all 304)")


if __name__ == "__main__":
    main()
