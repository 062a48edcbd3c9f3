#!/usr/bin/env python3
"""Early stopping on real learning curves: epochs spent and quality reached, side by side.

    python3 benches/early_stopping.py --tuna target/release/tuna [--seeds 5] [--trials 24] [--out r.json]

Two curves of the quickstart's training (experiments/train.py: logistic regression by SGD on the
breast-cancer data), 27 epochs per trial, over lr (log 1e-4..1), penalty, batch and momentum:

  * accuracy: validation accuracy maximized, read as the best epoch's (strategy max);
  * final loss: validation log-loss minimized, read at the last epoch (strategy latest), the harder
    one: large steps with momentum lead early and then oscillate or fade, and only the final
    model counts.

Every method runs once per seed and curve, one trial at a time (so asynchronous rules see the
same order every run):

  * tuna: no stopping, median, ASHA (random), ASHA (bayesian), each `--trials` trials; Hyperband
    (epochs as its resource, 1..27, eta 3: one loop is 69 trials). `tuna run` in a fresh data dir;
    the leaderboard JSON gives each trial's epochs (lastStep) and value.
  * tuna ASHA with 2 brackets (random and bayesian): odd trials start at rung 3, not 1.
  * Optuna (RandomSampler(seed)): MedianPruner, SuccessiveHalvingPruner and
    HyperbandPruner(1, 27, 3), `--trials` trials each; every trial runs train.py as a process,
    reports each epoch's accuracy (trial.report) and is killed when trial.should_prune() says so.
    Optuna is installed into .bench-venv (ignored by git) on the first run when it is missing, and
    the script runs again under that venv. The same three pruners also run on tuna's random trials
    of the same seed ("…, tuna's trials": enqueued in order), so that only the pruner differs from
    tuna's own rules on random trials.

Per method, over the seeds: the median best final objective (completed trials only), the median
epochs spent in all, and the median epochs spent until a completed trial came within 1% of the
median best of no stopping ("never" when it did not). And quality per epoch at the same spend for every method: the median of the best completed
trial's value once 108 and 216 epochs were spent ("best @108", "best @216"; 4 and 8 full trials'
worth). A benchmark, not a test: it measures.
"""

from __future__ import annotations

import argparse
import math
import json
import os
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
EXPERIMENTS = os.path.join(ROOT, "experiments")
VENV = os.path.join(ROOT, ".bench-venv")
EPOCHS = 27

SPACE = """    - {name: lr,       type: double, min: 1.0e-4, max: 1.0, scale: log}
    - {name: penalty,  type: categorical, values: [l1, l2, none]}
    - {name: batch,    type: discrete, values: [16, 32, 64, 128]}
    - {name: momentum, type: double, min: 0.0, max: 0.9, step: 0.1}
"""

STOPPING = {
    "none": "",
    "median": "  earlyStopping: {rule: median, settings: {minTrialsRequired: 3, startStep: 4}}\n",
    "asha": "  earlyStopping: {rule: asha, settings: {minResource: 1, reductionFactor: 3, maxResource: 27}}\n",
    "asha2": "  earlyStopping: {rule: asha, settings: {minResource: 1, reductionFactor: 3, maxResource: 27, brackets: 2}}\n",
}


# curve: (metric, goal, strategy, Optuna direction, the value a trial ends with)
CURVES = {
    "accuracy": ("accuracy", "maximize", "max", "maximize", max),
    "final loss": ("loss", "minimize", "latest", "minimize", lambda values: values[-1]),
}


def spec(name: str, algorithm: str, seed: int, trials: int, stopping: str, curve: str) -> str:
    metric, goal, strategy, _, _ = CURVES[curve]
    hyperband = algorithm == "hyperband"
    settings = ", settings: {resourceParameter: epochs, eta: 3}" if hyperband else ""
    space = SPACE + ("    - {name: epochs, type: int, min: 1, max: 27}\n" if hyperband else "")
    epochs = '"${epochs}"' if hyperband else f'"{EPOCHS}"'
    return (
        f"apiVersion: tuna.dev/v1alpha1\nkind: Experiment\nmetadata: {{name: {name}}}\nspec:\n"
        f"  objective: {{metric: {metric}, goal: {goal}, strategy: {strategy}}}\n"
        f"  algorithm: {{name: {algorithm}, seed: {seed}{settings}}}\n"
        f"  parameters:\n{space}"
        f"  maxTrials: {trials}\n  parallelTrials: 1\n  maxFailedTrials: 1000\n{STOPPING[stopping]}"
        f"  trial:\n    command: [python3, {os.path.join(EXPERIMENTS, 'train.py')}, --lr, \"${{lr}}\", --epochs, {epochs},\n"
        f"              --penalty, \"${{penalty}}\", --batch, \"${{batch}}\", --momentum, \"${{momentum}}\"]\n"
    )


def run_tuna(tuna: str, workdir: str, algorithm: str, stopping: str, seed: int, trials: int, curve: str) -> list[tuple]:
    """[(epochs run, value, completed)] in trial order."""
    name = f"bench-{algorithm}-{stopping}-{seed}-{CURVES[curve][0]}"
    path = os.path.join(workdir, name + ".yaml")
    with open(path, "w") as f:
        f.write(spec(name, algorithm, seed, trials, stopping, curve))
    data = os.path.join(workdir, name)
    subprocess.run([tuna, "run", path, "--data-dir", data, "--gpus", "none"],
                   check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    board = subprocess.run([tuna, "leaderboard", name, "--data-dir", data, "--format", "json"],
                           check=True, capture_output=True, text=True)
    rows = sorted(json.loads(board.stdout)["trials"], key=lambda r: r["name"])
    PARAMETERS[(algorithm, stopping, seed, curve)] = [r["parameters"] for r in rows]
    return [(r.get("lastStep") or 0, r.get("objective"), r["phase"] == "Succeeded") for r in rows]


# Each tuna run's trials' parameters, in trial order: (algorithm, stopping, seed, curve) → [params].
PARAMETERS: dict = {}


def run_optuna(pruner_name: str, seed: int, trials: int, curve: str, enqueue: list | None = None) -> list[tuple]:
    """Optuna's sampler draws the trials, or, with `enqueue`, they are those parameters in order
    (tuna's random trials of the same seed: the same configurations, only the pruner differs)."""
    import optuna

    metric, _, _, direction, final = CURVES[curve]
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    pruners = {
        "MedianPruner": lambda: optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=4),
        "SuccessiveHalvingPruner": lambda: optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3),
        "HyperbandPruner": lambda: optuna.pruners.HyperbandPruner(min_resource=1, max_resource=EPOCHS,
                                                                  reduction_factor=3),
    }
    study = optuna.create_study(direction=direction, sampler=optuna.samplers.RandomSampler(seed=seed),
                                pruner=pruners[pruner_name]())
    for params in enqueue or []:
        study.enqueue_trial({"lr": float(params["lr"]), "penalty": params["penalty"],
                             "batch": int(params["batch"]), "momentum": round(float(params["momentum"]), 1)})
    record = []

    def objective(trial):
        args = ["--lr", str(trial.suggest_float("lr", 1e-4, 1.0, log=True)),
                "--penalty", trial.suggest_categorical("penalty", ["l1", "l2", "none"]),
                "--batch", str(trial.suggest_categorical("batch", [16, 32, 64, 128])),
                "--momentum", str(trial.suggest_float("momentum", 0.0, 0.9, step=0.1))]
        proc = subprocess.Popen([sys.executable, os.path.join(EXPERIMENTS, "train.py"), "--epochs", str(EPOCHS), *args],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                env={**os.environ, "TUNA_OUTPUT_DIR": tempfile.gettempdir()})
        values, epoch = [], 0
        for line in proc.stdout:
            fields = dict(kv.split("=") for kv in line.split())
            epoch, value = int(fields["epoch"]), float(fields[metric])
            values.append(value)
            trial.report(value, epoch)
            if trial.should_prune():
                proc.kill()
                proc.wait()
                record.append((epoch, final(values), False))
                raise optuna.TrialPruned()
        proc.wait()
        record.append((epoch, final(values), True))
        return final(values)

    study.optimize(objective, n_trials=trials)
    return record


def best_of(run: list[tuple], maximize: bool) -> float:
    values = [v for _, v, done in run if done and v is not None]
    return (max if maximize else min)(values, default=float("nan"))


# Budgets (epochs spent in all) at which the best completed trial so far is read: quality per
# epoch, the same spend for every method (27 epochs = one full trial).
BUDGETS = (108, 216)


def best_within(run: list[tuple], budget: int, maximize: bool) -> float:
    """The best value of the trials completed before `budget` epochs were spent (nan: none)."""
    total, kept = 0, []
    for epochs, value, done in run:
        total += epochs
        if total > budget:
            break
        if done and value is not None:
            kept.append(value)
    return (max if maximize else min)(kept, default=float("nan"))


def median_of(values: list[float], maximize: bool) -> float:
    """The median, a run with nothing counted as the worst."""
    worst = float("-inf") if maximize else float("inf")
    return statistics.median([worst if math.isnan(v) else v for v in values])


def summary(runs: list[list[tuple]], reference: float, maximize: bool) -> dict:
    bests = [best_of(run, maximize) for run in runs]
    spent = [sum(e for e, _, _ in run) for run in runs]
    reach = []
    for run in runs:
        total, hit = 0, None
        for epochs, value, done in run:
            total += epochs
            close = value is not None and (value >= 0.99 * reference if maximize else value <= 1.01 * reference)
            if hit is None and done and close:
                hit = total
        reach.append(hit)
    reached = [r for r in reach if r is not None]
    return {
        "best": statistics.median(bests),
        "epochs": statistics.median(spent),
        "to_1pct": statistics.median(reached) if len(reached) * 2 > len(reach) else None,
        "within": {b: median_of([best_within(run, b, maximize) for run in runs], maximize) for b in BUDGETS},
        "runs": runs,
    }


def ensure_optuna() -> bool:
    """Whether Optuna can be imported here; installs it into .bench-venv and re-runs the script."""
    try:
        import optuna  # noqa: F401
        return True
    except ImportError:
        pass
    if os.environ.get("TUNA_BENCH_IN_VENV"):
        return False
    python = os.path.join(VENV, "bin", "python")
    if not os.path.exists(python):
        subprocess.run([sys.executable, "-m", "venv", VENV], check=True)
    subprocess.run([python, "-m", "pip", "install", "--quiet", "optuna"], check=True)
    os.execve(python, [python, *sys.argv], {**os.environ, "TUNA_BENCH_IN_VENV": "1"})
    return False


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tuna", required=True, help="the tuna binary (a release build)")
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--trials", type=int, default=24)
    p.add_argument("--no-optuna", action="store_true", help="skip the Optuna pruners")
    p.add_argument("--out", help="write every run as JSON here")
    a = p.parse_args()
    optuna_ok = not a.no_optuna and ensure_optuna()
    tuna = os.path.abspath(a.tuna)
    seeds = range(1, a.seeds + 1)
    methods = [("tuna, no stopping", "random", "none"), ("tuna median", "random", "median"),
               ("tuna ASHA (random)", "random", "asha"), ("tuna ASHA (bayesian)", "bayesian", "asha"),
               ("tuna ASHA, 2 brackets (random)", "random", "asha2"),
               ("tuna ASHA, 2 brackets (bayesian)", "bayesian", "asha2"),
               ("tuna Hyperband", "hyperband", "none")]
    out = {}
    for curve in CURVES:
        maximize = CURVES[curve][1] == "maximize"
        results = {}
        with tempfile.TemporaryDirectory() as workdir:
            for label, algorithm, stopping in methods:
                trials = 69 if algorithm == "hyperband" else a.trials
                results[label] = [run_tuna(tuna, workdir, algorithm, stopping, s, trials, curve) for s in seeds]
                print(f"  {curve}: ran {label}", file=sys.stderr)
        if optuna_ok:
            for pruner in ["MedianPruner", "SuccessiveHalvingPruner", "HyperbandPruner"]:
                results[f"Optuna {pruner}"] = [run_optuna(pruner, s, a.trials, curve) for s in seeds]
                print(f"  {curve}: ran Optuna {pruner}", file=sys.stderr)
            for pruner in ["MedianPruner", "SuccessiveHalvingPruner", "HyperbandPruner"]:
                same = [PARAMETERS[("random", "none", s, curve)] for s in seeds]
                results[f"Optuna {pruner[:-6]}, tuna's trials"] = [
                    run_optuna(pruner, s, a.trials, curve, enqueue=same[i]) for i, s in enumerate(seeds)]
                print(f"  {curve}: ran Optuna {pruner} on tuna's random trials", file=sys.stderr)
        reference = statistics.median(best_of(run, maximize) for run in results["tuna, no stopping"])
        table = {label: summary(runs, reference, maximize) for label, runs in results.items()}
        out[curve] = table
        none_epochs = table["tuna, no stopping"]["epochs"]
        print(f"\n{curve}: {a.seeds} seeds, {a.trials} trials (Hyperband: one loop, 69), {EPOCHS} epochs at most; "
              f"reference: no stopping's median best {reference:.6g}\n")
        within = "".join(f" {'best @' + str(b):>11}" for b in BUDGETS)
        print(f"{'method':<32} {'median best':>12} {'median epochs':>14} {'× fewer':>8} {'epochs to 1%':>13}{within}")
        for label, row in table.items():
            fewer = none_epochs / row["epochs"] if row["epochs"] else float("nan")
            to = "never" if row["to_1pct"] is None else f"{row['to_1pct']:g}"
            at = "".join(f" {row['within'][b]:>11.6g}" for b in BUDGETS)
            print(f"{label:<32} {row['best']:>12.6g} {row['epochs']:>14g} {fewer:>8.3g} {to:>13}{at}")
    if not optuna_ok:
        print("\n(Optuna pruners skipped: --no-optuna, or Optuna could not be installed)")
    if a.out:
        with open(a.out, "w") as f:
            json.dump(out, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
