#!/usr/bin/env python3
"""Ask/tell cycles per second: tuna's REST API vs Optuna on SQLite, in one run.

Both sides run the same N sequential cycles (ask one point, evaluate a cheap
function, tell its value) on the same mixed space as the shared harness's
``mixed5``: x, y double in [-5, 5]; lr double in [1e-5, 1] (log); n int in
[1, 8]; opt categorical in {a, b, c}. Both use random search.

  * tuna: ``BIN serve`` on a free loopback port with a fresh data dir; an
    ``executor: external`` experiment; ask = POST .../suggestions {"count":1},
    tell = POST .../trials/{trial}/complete {"metrics":{"value":F}}, over one
    keep-alive HTTP connection.
  * Optuna: create_study(storage="sqlite:///<tmp>/optuna.db",
    sampler=RandomSampler(seed=0)); study.ask(distributions) + study.tell().

Creating the experiment / study is not timed. Prints each rate, the median
per-cycle latency and the tuna/optuna ratio, then stops the server with
SIGTERM and checks that it exits 0.

Run (from the repository root, after ``pip install optuna``):

    cargo build --release
    python3 benches/asktell_vs_optuna.py --tuna target/release/tuna [--cycles 500] [--out r.json]

Python 3.11 standard library plus optuna only. On a shared machine prefix ``nice -n 10``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tuna_http import Api, free_port  # noqa: E402

SPACE = [
    {"name": "x", "type": "double", "min": -5.0, "max": 5.0},
    {"name": "y", "type": "double", "min": -5.0, "max": 5.0},
    {"name": "lr", "type": "double", "min": 1e-5, "max": 1.0, "scale": "log"},
    {"name": "n", "type": "int", "min": 1, "max": 8},
    {"name": "opt", "type": "categorical", "values": ["a", "b", "c"]},
]
CENTERS = {"a": (-2.0, 1.0), "b": (1.5, -2.0), "c": (3.0, 3.0)}


def f(p: dict) -> float:
    """A cheap mixed-type objective (minimum 0 at x=1.5, y=-2, lr=1e-3, n=5, opt=b)."""
    cx, cy = CENTERS[p["opt"]]
    u, m = math.log10(p["lr"]) + 3, p["n"] - 5
    return (p["x"] - cx) ** 2 + (p["y"] - cy) ** 2 + 0.8 * u * u + 0.3 * m * m + (p["opt"] != "b")




def start_server(binary: str, data_dir: str) -> tuple[subprocess.Popen, int, str]:
    port = free_port()
    log = data_dir + ".log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUNA_")}  # no stray token/listen
    proc = subprocess.Popen([binary, "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", data_dir],
                            stdout=open(log, "wb"), stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"tuna serve exited with {proc.returncode}:\n{open(log).read()}")
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", "/readyz")
            if c.getresponse().status == 200:
                c.close()
                return proc, port, log
        except OSError:
            pass
        time.sleep(0.05)
    proc.kill()
    raise SystemExit(f"tuna serve not ready after 30 s:\n{open(log).read()}")


def run_tuna(port: int, cycles: int) -> list[float]:
    api = Api(port)
    name = "asktell-bench"
    api.call("POST", "/api/v1/experiments", {
        "apiVersion": "tuna.dev/v1alpha1", "kind": "Experiment", "metadata": {"name": name},
        "spec": {"objective": {"metric": "value", "goal": "minimize"},
                 "algorithm": {"name": "random", "seed": 0}, "maxTrials": cycles, "parallelTrials": 1,
                 "executor": "external", "parameters": SPACE},
    }, expect=201)
    lat = []
    for _ in range(cycles):
        t0 = time.perf_counter()
        trials = api.call("POST", f"/api/v1/experiments/{name}/suggestions", {"count": 1})["trials"]
        if len(trials) != 1:
            raise SystemExit(f"ask returned {len(trials)} trials after {len(lat)} cycles: {trials}")
        t = trials[0]
        api.call("POST", f"/api/v1/experiments/{name}/trials/{t['name']}/complete",
                 {"metrics": {"value": f(t["parameters"])}})
        lat.append(time.perf_counter() - t0)
    api.conn.close()
    return lat


def run_optuna(tmp: str, cycles: int) -> list[float]:
    import optuna
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    dists = {
        "x": FloatDistribution(-5.0, 5.0), "y": FloatDistribution(-5.0, 5.0),
        "lr": FloatDistribution(1e-5, 1.0, log=True), "n": IntDistribution(1, 8),
        "opt": CategoricalDistribution(["a", "b", "c"]),
    }
    study = optuna.create_study(storage=f"sqlite:///{tmp}/optuna.db", direction="minimize",
                                sampler=optuna.samplers.RandomSampler(seed=0))
    lat = []
    for _ in range(cycles):
        t0 = time.perf_counter()
        trial = study.ask(dists)
        study.tell(trial, f(trial.params))
        lat.append(time.perf_counter() - t0)
    return lat


def stats(lat: list[float]) -> dict:
    return {"cycles": len(lat), "total_s": sum(lat), "rate_per_s": len(lat) / sum(lat),
            "median_ms": 1e3 * statistics.median(lat),
            "p95_ms": 1e3 * statistics.quantiles(lat, n=20)[-1]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tuna", required=True, help="path of the tuna binary")
    ap.add_argument("--cycles", type=int, default=500)
    ap.add_argument("--out", help="also write the results as JSON here")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="asktell-") as tmp:
        proc, port, log = start_server(args.tuna, os.path.join(tmp, "tuna"))
        try:
            tuna = stats(run_tuna(port, args.cycles))
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                rc = proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                rc = "killed after 30 s"
        optuna_ = stats(run_optuna(tmp, args.cycles))
        server_log = open(log).read()

    ratio = tuna["rate_per_s"] / optuna_["rate_per_s"]
    print(f"{args.cycles} sequential ask+tell cycles, random search, 5-parameter mixed space")
    for label, s in (("tuna REST (keep-alive)", tuna), ("optuna + SQLite", optuna_)):
        print(f"  {label:24s} {s['rate_per_s']:9.1f} cycles/s   median {s['median_ms']:7.3f} ms"
              f"   p95 {s['p95_ms']:7.3f} ms   total {s['total_s']:.3f} s")
    print(f"  ratio tuna/optuna: {ratio:.2f}x")
    print(f"  tuna serve exit status after SIGTERM: {rc}")
    if args.out:
        with open(args.out, "w") as fh:
            json.dump({"cycles": args.cycles, "tuna": tuna, "optuna_sqlite": optuna_,
                       "ratio_tuna_over_optuna": ratio, "server_exit": rc,
                       "python": sys.version.split()[0], "optuna": __import__("optuna").__version__}, fh, indent=2)
    if rc != 0:
        print(f"error: tuna serve exited with {rc}, not 0; its log:\n{server_log}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
