#!/usr/bin/env python3
"""Load benchmark of `tuna serve`: many experiments, and one experiment with many trials.

A benchmark, not a test: it prints a table of figures for the README and asserts nothing but that
the server answered (every request has a deadline, so a hang shows as a failure, not a stall).

Part 1, for each N in --experiments (default 100,1000,10000), on a fresh data dir:
  * create rate: N ask/tell experiments POSTed one after another (creates/s);
  * idle CPU: the server's CPU (utime+stime from /proc/PID/stat) over --idle seconds, in cores;
  * RSS (VmRSS) after the idle window;
  * /healthz p99 over 200 sequential calls made during the idle window's end;
  * restart to ready: SIGTERM, start again on the same data dir, time until /readyz is 200.

Part 2, for each M in --trials (default 1000,10000,100000), one external experiment (random
search, M trials) driven to M trials by one client (ask 1, tell 1); then, at M trials:
  * ask+tell p50/p99 of the last 200 cycles with 1 client, and with 50 clients (threads, each with
    its own keep-alive connection) on a second experiment of the same size;
  * RSS with the first experiment at M trials (rss_one_mb) and with both (rss_both_mb), data-dir
    size, GET .../trials (a page of 1,000) and GET .../leaderboard?top=10 latency (median of 5).

Python 3.11 standard library only. Run from the repository root:

    cargo build --release
    python3 benches/server_load.py --tuna target/release/tuna [--quick] [--out results.json]

--quick runs 100/1000 experiments and 1000/10000 trials. On a shared machine prefix `nice -n 10`.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tuna_http import DEADLINE, Api, free_port  # noqa: E402

SPACE = [{"name": "x", "type": "double", "min": -5.0, "max": 5.0},
         {"name": "y", "type": "double", "min": -5.0, "max": 5.0}]
CLK_TCK = os.sysconf("SC_CLK_TCK")




class Server:
    def __init__(self, binary: str, data_dir: str):
        self.binary, self.data_dir, self.port = binary, data_dir, free_port()
        self.proc: subprocess.Popen | None = None

    def start(self) -> float:
        """Starts the server; returns the seconds until /readyz answered 200."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("TUNA_")}
        log = open(self.data_dir + ".log", "ab")
        started = time.monotonic()
        self.proc = subprocess.Popen([self.binary, "serve", "--listen", f"127.0.0.1:{self.port}",
                                      "--gpus", "none", "--data-dir", self.data_dir],
                                     stdout=log, stderr=subprocess.STDOUT, env=env)
        while time.monotonic() - started < 120:
            if self.proc.poll() is not None:
                raise SystemExit(f"tuna serve exited with {self.proc.returncode}; see {self.data_dir}.log")
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                c.request("GET", "/readyz")
                if c.getresponse().status == 200:
                    c.close()
                    return time.monotonic() - started
            except OSError:
                pass
            time.sleep(0.02)
        raise SystemExit("tuna serve not ready after 120 s")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                raise SystemExit("tuna serve ignored SIGTERM for 60 s")

    def cpu_seconds(self) -> float:
        fields = open(f"/proc/{self.proc.pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime

    def rss_mb(self) -> float:
        for line in open(f"/proc/{self.proc.pid}/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")


def experiment(name: str, max_trials: int, parallel: int = 1) -> dict:
    return {"apiVersion": "tuna.dev/v1alpha1", "kind": "Experiment", "metadata": {"name": name},
            "spec": {"objective": {"metric": "value", "goal": "minimize"},
                     "algorithm": {"name": "random", "seed": 1}, "maxTrials": max_trials,
                     "parallelTrials": parallel, "executor": "external", "parameters": SPACE}}


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def dir_mb(path: str) -> float:
    total = 0
    for root, _, files in os.walk(path):
        total += sum(os.path.getsize(os.path.join(root, f)) for f in files)
    return total / 1e6


def many_experiments(binary: str, n: int, idle: float) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        server = Server(binary, os.path.join(tmp, "data"))
        server.start()
        api = Api(server.port)
        t0 = time.monotonic()
        for i in range(n):
            api.call("POST", "/api/v1/experiments", experiment(f"e{i:05d}", 1000), expect=201)
        create_rate = n / (time.monotonic() - t0)
        time.sleep(2)  # let the controller pick every experiment up
        cpu0, w0 = server.cpu_seconds(), time.monotonic()
        time.sleep(idle)
        # A keep-alive connection idle for longer than --header-timeout is closed by the server.
        api.conn.close()
        api = Api(server.port)
        health = []
        for _ in range(200):
            t = time.perf_counter()
            api.call("GET", "/healthz")
            health.append(time.perf_counter() - t)
        idle_cores = (server.cpu_seconds() - cpu0) / (time.monotonic() - w0)
        rss = server.rss_mb()
        api.conn.close()
        server.stop()
        ready = server.start()
        server.stop()
        return {"experiments": n, "create_per_s": create_rate, "idle_cores": idle_cores, "rss_mb": rss,
                "healthz_p99_ms": 1000 * pct(health, 0.99), "restart_to_ready_s": ready}


def cycle(api: Api, name: str) -> float:
    t = time.perf_counter()
    trials = api.call("POST", f"/api/v1/experiments/{name}/suggestions", {"count": 1})["trials"]
    if not trials:
        raise SystemExit(f"{name}: no trial to ask for")
    x = trials[0]["parameters"]
    api.call("POST", f"/api/v1/experiments/{name}/trials/{trials[0]['name']}/complete",
             {"metrics": {"value": x["x"] ** 2 + x["y"] ** 2}})
    return time.perf_counter() - t


def fill(api: Api, name: str, m: int) -> list[float]:
    """Drives `name` from 0 to m trials with one client; returns the last 200 cycle times."""
    times = [cycle(api, name) for _ in range(m)]
    return times[-200:]


def many_clients(port: int, name: str, clients: int, cycles_each: int) -> list[float]:
    times: list[float] = []
    lock = threading.Lock()
    errors: list[BaseException] = []

    def client() -> None:
        api = Api(port)
        try:
            mine = [cycle(api, name) for _ in range(cycles_each)]
            with lock:
                times.extend(mine)
        except BaseException as e:  # noqa: BLE001 — reported below
            errors.append(e)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise SystemExit(f"a client failed: {errors[0]}")
    return times


def timed(api: Api, path: str) -> float:
    samples = []
    for _ in range(5):
        t = time.perf_counter()
        api.call("GET", path)
        samples.append(time.perf_counter() - t)
    return statistics.median(samples)


def many_trials(binary: str, m: int, clients: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "data")
        server = Server(binary, data)
        server.start()
        api = Api(server.port)
        api.call("POST", "/api/v1/experiments", experiment("one", m + 200), expect=201)
        one = fill(api, "one", m)
        rss_one = server.rss_mb()
        api.call("POST", "/api/v1/experiments", experiment("wide", m + 200 + clients * 4, clients), expect=201)
        fill(api, "wide", m)
        fifty = many_clients(server.port, "wide", clients, 4)
        result = {
            "trials": m,
            "asktell_1_p50_ms": 1000 * pct(one, 0.5), "asktell_1_p99_ms": 1000 * pct(one, 0.99),
            f"asktell_{clients}_p50_ms": 1000 * pct(fifty, 0.5), f"asktell_{clients}_p99_ms": 1000 * pct(fifty, 0.99),
            "rss_one_mb": rss_one, "rss_both_mb": server.rss_mb(), "data_dir_mb": dir_mb(data),
            "get_trials_ms": 1000 * timed(api, "/api/v1/experiments/one/trials"),
            "leaderboard_top10_ms": 1000 * timed(api, "/api/v1/experiments/one/leaderboard?top=10"),
        }
        api.conn.close()
        server.stop()
        return result


def table(rows: list[dict]) -> str:
    keys = list(rows[0])
    fmt = lambda v: f"{v:.4g}" if isinstance(v, float) else str(v)  # noqa: E731
    lines = ["| " + " | ".join(keys) + " |", "|" + "---:|" * len(keys)]
    lines += ["| " + " | ".join(fmt(r[k]) for k in keys) + " |" for r in rows]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tuna", default="target/release/tuna")
    ap.add_argument("--experiments", default="100,1000,10000")
    ap.add_argument("--trials", default="1000,10000,100000")
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--idle", type=float, default=10.0, help="seconds of idle CPU measurement")
    ap.add_argument("--quick", action="store_true", help="100/1000 experiments, 1000/10000 trials")
    ap.add_argument("--out", help="write the figures as JSON here too")
    args = ap.parse_args()
    if args.quick:
        args.experiments, args.trials = "100,1000", "1000,10000"
    binary = os.path.abspath(args.tuna)
    first = [many_experiments(binary, int(n), args.idle) for n in args.experiments.split(",") if n]
    print(table(first), flush=True)
    print()
    second = [many_trials(binary, int(m), args.clients) for m in args.trials.split(",") if m]
    print(table(second), flush=True)
    if args.out:
        json.dump({"experiments": first, "trials": second}, open(args.out, "w"), indent=2)


if __name__ == "__main__":
    sys.exit(main())
