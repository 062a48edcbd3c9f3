#!/usr/bin/env python3
"""Logistic regression on the Wisconsin breast cancer data, trained by mini-batch SGD.

Example training program for tuna; Python 3 standard library only.

    python3 train.py --lr 0.05 --epochs 10 --penalty l2 --batch 32 --momentum 0.0 \
        [--keep best-loss|best-accuracy|last] [--seed 0] [--data PATH]

* Data: a CSV with a header line, numeric feature columns and a final 0/1
  ``target`` column (default: ``data/breast_cancer.csv`` next to this script).
* Split: stratified 80/20 train/validation split, shuffled with a fixed seed
  (0) whatever ``--seed`` says, so every trial is scored on the same
  validation set. ``--seed`` only controls weight initialisation and batch order.
* Features are standardised with the mean and std of the training split.
* Penalty: ``l1`` or ``l2`` on the weights (not the bias) with a fixed
  strength of 1e-3 (gradient term 1e-3*sign(w) or 1e-3*w), or ``none``.
* Optimiser: mini-batch SGD with classical (heavy-ball) momentum:
  v = momentum*v - lr*grad; w = w + v.
* After each epoch one line goes to stdout:
  ``epoch=N loss=L accuracy=A`` (validation log-loss and accuracy, 6 decimals;
  with ``--push`` the same rounded values are pushed at step N, and when tuna
  answers ``shouldStop`` (early stopping) the trial saves and exits 0 at once).
* ``--pace S`` waits S seconds after each epoch, standing in for a model that
  takes longer to train (so that an early stop lands mid-training).
  Logits are clipped to [-30, 30], probabilities to [1e-12, 1-1e-12] and
  weights/velocities to +-1e6, so the loss stays finite (at most ~27.6) even
  when training diverges.
* The model is written as JSON to ``$TUNA_OUTPUT_DIR/model.json`` (or
  ``./model.json`` when the variable is unset), with the ``epoch`` it is from.
  ``--keep`` says which epoch that is, and must match the experiment's
  objective so that the model tuna promotes is the one it ranked:
  - ``best-loss`` (default; for ``metric: loss, goal: minimize``, whose
    strategy is ``min``): the epoch with the lowest reported loss;
  - ``best-accuracy`` (for ``metric: accuracy, goal: maximize``, strategy
    ``max``): the epoch with the highest reported accuracy;
  - ``last`` (for ``strategy: latest``): the final epoch.
  Epochs are compared by the values as reported (6 decimals) and a tie keeps
  the earlier epoch, as tuna does, so the kept epoch is the trial's
  ``objectiveStep``. The best epoch so far is saved as soon as it improves
  (replacing the file in one step), so a trial stopped early leaves it too.
"""

import argparse
import csv
import json
import math
import operator
import os
import random
import sys
import time

PENALTY_STRENGTH = 1e-3
SPLIT_SEED = 0
VAL_FRACTION = 0.2
LOGIT_CLIP = 30.0
PROB_EPS = 1e-12
WEIGHT_CLIP = 1e6

# The epoch --keep saves: its name -> (the reported metric it compares, whether larger is better);
# "last" compares nothing.
KEEP = {"best-loss": ("loss", False), "best-accuracy": ("accuracy", True), "last": (None, None)}

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_DATA = os.path.join(HERE, "data", "breast_cancer.csv")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lr", type=float, default=0.05, help="learning rate (> 0)")
    p.add_argument("--epochs", type=int, default=10, help="passes over the training split")
    p.add_argument("--penalty", choices=("l1", "l2", "none"), default="l2")
    p.add_argument("--batch", type=int, default=32, help="mini-batch size")
    p.add_argument("--momentum", type=float, default=0.0, help="heavy-ball momentum in [0, 1)")
    p.add_argument("--keep", choices=KEEP, default="best-loss",
                   help="which epoch's model to save: lowest loss, highest accuracy, or the last")
    p.add_argument("--seed", type=int, default=0, help="seed for init and batch order")
    p.add_argument("--data", default=DEFAULT_DATA, help="CSV file (header, features..., target)")
    p.add_argument("--pace", type=float, default=0.0,
                   help="seconds to wait after each epoch, standing in for a bigger model "
                        "(the early-stopping examples use it so that a stop lands mid-training)")
    p.add_argument("--push", action="store_true",
                   help="also push each epoch's metrics to tuna over HTTP (see tuna_push.py)")
    a = p.parse_args(argv)
    if not (a.lr > 0 and math.isfinite(a.lr)):
        p.error("--lr must be a positive finite number")
    if a.epochs < 1:
        p.error("--epochs must be >= 1")
    if a.batch < 1:
        p.error("--batch must be >= 1")
    if not (a.pace >= 0 and math.isfinite(a.pace)):
        p.error("--pace must be a non-negative number of seconds")
    if not 0.0 <= a.momentum < 1.0:
        p.error("--momentum must be in [0, 1)")
    return a


def load_csv(path):
    """Return (feature_names, rows, labels) with rows as lists of floats."""
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        rows, labels = [], []
        for rec in reader:
            if not rec:
                continue
            rows.append([float(v) for v in rec[:-1]])
            labels.append(int(float(rec[-1])))
    return header[:-1], rows, labels


def stratified_split(labels, val_fraction, seed):
    """Indices (train, val): each class shuffled and split val_fraction / rest."""
    rng = random.Random(seed)
    train, val = [], []
    for cls in sorted(set(labels)):
        idx = [i for i, y in enumerate(labels) if y == cls]
        rng.shuffle(idx)
        n_val = int(round(len(idx) * val_fraction))
        val.extend(idx[:n_val])
        train.extend(idx[n_val:])
    return sorted(train), sorted(val)


def standardizer(rows):
    """Column means and stds (a zero std is replaced by 1)."""
    n = len(rows)
    cols = list(zip(*rows))
    mean = [sum(c) / n for c in cols]
    std = []
    for c, m in zip(cols, mean):
        s = math.sqrt(sum((v - m) ** 2 for v in c) / n)
        std.append(s if s > 0 else 1.0)
    return mean, std


def evaluate(w, b, rows, labels):
    """Mean log-loss and accuracy of (w, b) on standardized rows."""
    mul, exp, log = operator.mul, math.exp, math.log
    loss = 0.0
    correct = 0
    for x, y in zip(rows, labels):
        z = b + sum(map(mul, w, x))
        if z > LOGIT_CLIP:
            z = LOGIT_CLIP
        elif z < -LOGIT_CLIP:
            z = -LOGIT_CLIP
        elif z != z:  # NaN (only possible with non-finite input data)
            z = 0.0
        p = 1.0 / (1.0 + exp(-z))
        p = min(max(p, PROB_EPS), 1.0 - PROB_EPS)
        loss -= log(p) if y else log(1.0 - p)
        correct += (z >= 0.0) == (y == 1)
    n = len(rows)
    return loss / n, correct / n


def reported(value):
    """The value as the epoch's line reports it (6 decimals): what tuna ranks."""
    return float(f"{value:.6f}")


def improves(keep, metrics, best):
    """Whether this epoch's reported ``metrics`` replace the kept epoch's (``best``, or None)."""
    metric, larger = KEEP[keep]
    if best is None or metric is None:
        return True
    return metrics[metric] > best[metric] if larger else metrics[metric] < best[metric]


def train(args, names, rows, labels, save):
    """Trains, calling ``save(model)`` whenever ``--keep`` keeps an epoch (``last``: every epoch)."""
    tr_idx, va_idx = stratified_split(labels, VAL_FRACTION, SPLIT_SEED)
    mean, std = standardizer([rows[i] for i in tr_idx])

    def scale(r):
        return [(v - m) / s for v, m, s in zip(r, mean, std)]

    x_tr = [scale(rows[i]) for i in tr_idx]
    y_tr = [labels[i] for i in tr_idx]
    x_va = [scale(rows[i]) for i in va_idx]
    y_va = [labels[i] for i in va_idx]

    d = len(names)
    rng = random.Random(args.seed)
    w = [rng.gauss(0.0, 0.01) for _ in range(d)]
    b = 0.0
    vw = [0.0] * d
    vb = 0.0
    lr, mu, lam = args.lr, args.momentum, PENALTY_STRENGTH
    order = list(range(len(x_tr)))
    mul, exp = operator.mul, math.exp
    C = WEIGHT_CLIP

    kept = None
    for epoch in range(1, args.epochs + 1):
        rng.shuffle(order)
        for start in range(0, len(order), args.batch):
            batch = order[start:start + args.batch]
            gw = [0.0] * d
            gb = 0.0
            for i in batch:
                x = x_tr[i]
                z = b + sum(map(mul, w, x))
                if z > LOGIT_CLIP:
                    z = LOGIT_CLIP
                elif z < -LOGIT_CLIP:
                    z = -LOGIT_CLIP
                e = 1.0 / (1.0 + exp(-z)) - y_tr[i]
                gw = [g + e * xj for g, xj in zip(gw, x)]
                gb += e
            k = 1.0 / len(batch)
            if args.penalty == "l2":
                gw = [g * k + lam * wj for g, wj in zip(gw, w)]
            elif args.penalty == "l1":
                gw = [g * k + (lam if wj > 0 else (-lam if wj < 0 else 0.0))
                      for g, wj in zip(gw, w)]
            else:
                gw = [g * k for g in gw]
            gb *= k
            # Heavy-ball step; velocity and weights are clipped to +-WEIGHT_CLIP
            # so that absurd learning rates diverge to large but finite values.
            vw = [min(max(mu * v - lr * g, -C), C) for v, g in zip(vw, gw)]
            vb = min(max(mu * vb - lr * gb, -C), C)
            w = [min(max(wj + v, -C), C) for wj, v in zip(w, vw)]
            b = min(max(b + vb, -C), C)
        loss, acc = evaluate(w, b, x_va, y_va)
        metrics = {"loss": reported(loss), "accuracy": reported(acc)}
        print(f"epoch={epoch} loss={loss:.6f} accuracy={acc:.6f}", flush=True)
        should_stop = False
        if args.push:
            import tuna_push
            should_stop = tuna_push.report(step=epoch, **metrics)
        if improves(args.keep, metrics, kept):
            kept = metrics
            save(model(args, names, w, b, mean, std, epoch, metrics, len(x_tr), len(x_va)))
        if should_stop:
            print(f"train.py: tuna stopped this trial early at epoch {epoch}", file=sys.stderr)
            return
        if args.pace > 0:
            time.sleep(args.pace)


def model(args, names, w, b, mean, std, epoch, metrics, n_train, n_val):
    """The model as saved: weights, standardisation, the epoch it is from and its reported metrics."""
    return {
        "weights": list(w),
        "bias": b,
        "mean": mean,
        "std": std,
        "features": names,
        "epoch": epoch,
        "keep": args.keep,
        "accuracy": metrics["accuracy"],
        "loss": metrics["loss"],
        "params": {
            "lr": args.lr,
            "epochs": args.epochs,
            "penalty": args.penalty,
            "penalty_strength": PENALTY_STRENGTH,
            "batch": args.batch,
            "momentum": args.momentum,
            "seed": args.seed,
            "split_seed": SPLIT_SEED,
            "n_train": n_train,
            "n_val": n_val,
        },
    }


def saver(out_dir):
    """A ``save(model)`` that replaces ``out_dir/model.json`` in one step (never half written)."""
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, "model.json")

    def save(model):
        with open(path + ".partial", "w") as f:
            json.dump(model, f)
        os.replace(path + ".partial", path)

    return save


def main(argv=None):
    args = parse_args(argv)
    try:
        names, rows, labels = load_csv(args.data)
    except (OSError, ValueError, StopIteration) as exc:
        print(f"train.py: cannot load {args.data}: {exc}", file=sys.stderr)
        return 1
    train(args, names, rows, labels, saver(os.environ.get("TUNA_OUTPUT_DIR") or "."))
    return 0


if __name__ == "__main__":
    sys.exit(main())
