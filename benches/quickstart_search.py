"""Random against Bayesian search on the quickstart training, same budget, five seeds.

    python3 benches/quickstart_search.py --tuna target/release/tuna [--seeds 5]

Runs experiments/quickstart-bayesian.yaml (validation log-loss, minimized; 24 trials, 2 at a time)
once per seed with `algorithm.name: bayesian` and once with `random`, each in a fresh data dir, and
prints every run's best loss and the median per algorithm.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
EXPERIMENTS = os.path.join(HERE, "..", "experiments")


def best_loss(tuna, algorithm, seed, workdir):
    with open(os.path.join(EXPERIMENTS, "quickstart-bayesian.yaml")) as f:
        spec = f.read()
    spec = spec.replace("name: bayesian", f"name: {algorithm}").replace("seed: 7", f"seed: {seed}")
    spec_path = os.path.join(EXPERIMENTS, f".compare-{algorithm}-{seed}.yaml")
    with open(spec_path, "w") as f:
        f.write(spec)
    data = os.path.join(workdir, f"{algorithm}-{seed}")
    try:
        subprocess.run([tuna, "run", spec_path, "--data-dir", data, "--gpus", "none"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        board = subprocess.run([tuna, "leaderboard", "quickstart-bayesian", "--data-dir", data, "--format", "json"],
                               check=True, capture_output=True, text=True)
    finally:
        os.remove(spec_path)
    return json.loads(board.stdout)["trials"][0]["objective"]


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tuna", required=True)
    p.add_argument("--seeds", type=int, default=5)
    args = p.parse_args()
    results = {"random": [], "bayesian": []}
    with tempfile.TemporaryDirectory() as workdir:
        for seed in range(1, args.seeds + 1):
            for algorithm in results:
                loss = best_loss(os.path.abspath(args.tuna), algorithm, seed, workdir)
                results[algorithm].append(loss)
                print(f"seed {seed} {algorithm:8} best loss {loss:.6f}", flush=True)
    for algorithm, losses in results.items():
        print(f"{algorithm:8} median best loss {statistics.median(losses):.6f} over {len(losses)} seeds")
    better = statistics.median(results["bayesian"]) < statistics.median(results["random"])
    print("bayesian is better" if better else "bayesian is NOT better")
    return 0


if __name__ == "__main__":
    sys.exit(main())
