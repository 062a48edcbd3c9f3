#!/usr/bin/env python3
"""Small PyTorch MLP on the Wisconsin breast cancer data (GPU when available).

Example training program for tuna:

    python3 train_gpu.py --lr 0.01 --epochs 20 --hidden 32 --batch 32 \
        [--keep best-accuracy|best-loss|last] [--seed 0] [--data PATH]

* Reads ``../data/breast_cancer.csv`` (relative to this script) with the csv
  module, uses the same stratified 80/20 split (fixed split seed 0) and
  train-split standardisation as ``../train.py``.
* Model: Linear(30, hidden) -> ReLU -> Linear(hidden, 1), trained with Adam
  on the binary cross-entropy (logits) loss.
* Prints ``# device=cuda:0`` or ``# device=cpu`` first, then one line per
  epoch: ``epoch=N loss=L accuracy=A`` (validation loss and accuracy, 6 decimals).
* Saves the state dict, normalisation statistics and the ``epoch`` they are
  from to ``$TUNA_OUTPUT_DIR/model.pt`` (or ``./model.pt``). ``--keep`` says
  which epoch, as in ``../train.py``, and must match the experiment's objective
  so that the model tuna promotes is the one it ranked: ``best-accuracy``
  (default; for ``metric: accuracy, goal: maximize``, strategy ``max``),
  ``best-loss`` (``metric: loss, goal: minimize``, strategy ``min``) or
  ``last`` (``strategy: latest``). Epochs are compared by their reported
  values (6 decimals), a tie keeps the earlier epoch, as tuna does, and the
  best epoch so far is saved as soon as it improves (replacing the file in one
  step).
* Exits with code 3 if PyTorch is not installed.
"""

import argparse
import csv
import math
import os
import random
import sys

try:
    import torch
    from torch import nn
except ImportError:
    print("train_gpu.py: PyTorch is not installed (pip install torch); cannot train.",
          file=sys.stderr)
    sys.exit(3)

SPLIT_SEED = 0
VAL_FRACTION = 0.2
HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_DATA = os.path.join(HERE, "..", "data", "breast_cancer.csv")
# The epoch --keep saves: its name -> (the reported metric it compares, whether larger is better);
# "last" compares nothing.
KEEP = {"best-accuracy": ("accuracy", True), "best-loss": ("loss", False), "last": (None, None)}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lr", type=float, default=0.01, help="Adam learning rate (> 0)")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--hidden", type=int, default=32, help="hidden layer width")
    p.add_argument("--batch", type=int, default=32, help="mini-batch size")
    p.add_argument("--keep", choices=KEEP, default="best-accuracy",
                   help="which epoch's model to save: highest accuracy, lowest loss, or the last")
    p.add_argument("--seed", type=int, default=0, help="seed for init and batch order")
    p.add_argument("--data", default=DEFAULT_DATA)
    a = p.parse_args(argv)
    if not (a.lr > 0 and math.isfinite(a.lr)):
        p.error("--lr must be a positive finite number")
    for name in ("epochs", "hidden", "batch"):
        if getattr(a, name) < 1:
            p.error(f"--{name} must be >= 1")
    return a


def load_csv(path):
    """Return (feature_names, rows, labels) with rows as lists of floats."""
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        rows, labels = [], []
        for rec in reader:
            if rec:
                rows.append([float(v) for v in rec[:-1]])
                labels.append(int(float(rec[-1])))
    return header[:-1], rows, labels


def stratified_split(labels, val_fraction, seed):
    """Same split as ../train.py: per-class shuffle, first val_fraction to val."""
    rng = random.Random(seed)
    train, val = [], []
    for cls in sorted(set(labels)):
        idx = [i for i, y in enumerate(labels) if y == cls]
        rng.shuffle(idx)
        n_val = int(round(len(idx) * val_fraction))
        val.extend(idx[:n_val])
        train.extend(idx[n_val:])
    return sorted(train), sorted(val)


def improves(keep, metrics, best):
    """Whether this epoch's reported ``metrics`` replace the kept epoch's (``best``, or None)."""
    metric, larger = KEEP[keep]
    if best is None or metric is None:
        return True
    return metrics[metric] > best[metric] if larger else metrics[metric] < best[metric]


def main(argv=None):
    args = parse_args(argv)
    try:
        names, rows, labels = load_csv(args.data)
    except (OSError, ValueError, StopIteration) as exc:
        print(f"train_gpu.py: cannot load {args.data}: {exc}", file=sys.stderr)
        return 1

    torch.manual_seed(args.seed)
    device = torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    print(f"# device={device}", flush=True)

    tr_idx, va_idx = stratified_split(labels, VAL_FRACTION, SPLIT_SEED)
    x = torch.tensor(rows, dtype=torch.float32)
    y = torch.tensor(labels, dtype=torch.float32)
    x_tr, y_tr = x[tr_idx], y[tr_idx]
    x_va, y_va = x[va_idx], y[va_idx]
    mean = x_tr.mean(dim=0)
    std = x_tr.std(dim=0, unbiased=False).clamp_min(1e-12)
    x_tr = ((x_tr - mean) / std).to(device)
    x_va = ((x_va - mean) / std).to(device)
    y_tr, y_va = y_tr.to(device), y_va.to(device)

    model = nn.Sequential(
        nn.Linear(len(names), args.hidden), nn.ReLU(), nn.Linear(args.hidden, 1)
    ).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    loss_fn = nn.BCEWithLogitsLoss()
    gen = torch.Generator().manual_seed(args.seed)

    out_dir = os.environ.get("TUNA_OUTPUT_DIR") or "."
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, "model.pt")
    kept = None
    for epoch in range(1, args.epochs + 1):
        model.train()
        perm = torch.randperm(len(x_tr), generator=gen).to(device)
        for start in range(0, len(perm), args.batch):
            b = perm[start:start + args.batch]
            opt.zero_grad()
            loss = loss_fn(model(x_tr[b]).squeeze(1), y_tr[b])
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 10.0)
            opt.step()
        model.eval()
        with torch.no_grad():
            logits = model(x_va).squeeze(1).clamp(-30.0, 30.0)
            val_loss = loss_fn(logits, y_va).item()
            acc = ((logits >= 0).float() == y_va).float().mean().item()
        if not math.isfinite(val_loss):  # keep the printed numbers finite
            val_loss = 30.0
        print(f"epoch={epoch} loss={val_loss:.6f} accuracy={acc:.6f}", flush=True)
        metrics = {"loss": float(f"{val_loss:.6f}"), "accuracy": float(f"{acc:.6f}")}
        if improves(args.keep, metrics, kept):
            kept = metrics
            torch.save(
                {
                    "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
                    "mean": mean,
                    "std": std,
                    "features": names,
                    "epoch": epoch,
                    "accuracy": metrics["accuracy"],
                    "loss": metrics["loss"],
                    "params": vars(args),
                },
                path + ".partial",
            )
            os.replace(path + ".partial", path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
