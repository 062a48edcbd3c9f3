"""Push metrics to tuna over HTTP with nothing but the Python standard library.

A trial started by `tuna serve` gets TUNA_API (the server's URL), TUNA_EXPERIMENT, TUNA_TRIAL and
TUNA_TRIAL_TOKEN (good for this trial only). `report(step=3, loss=0.2, accuracy=0.9)` posts one
set of values; `report(artifact="s3://bucket/model")` says where the trial saved its model (what a
promotion serves on Kubernetes). It returns the server's `shouldStop` answer: True once the
experiment's early-stopping rule (`spec.earlyStopping`) stopped the trial, when the training loop
should save what it wants and exit (the trial then ends EarlyStopped, whatever its exit code):

    if tuna_push.report(step=epoch, accuracy=acc):
        break

Outside tuna (no TUNA_API) it does nothing and returns False, so a training script can call it
unconditionally.

A push that cannot reach the server (it restarts during a rollout, a drain, or a leader change) or
that gets 502/503/504 is retried with exponential backoff (0.5 s doubling, at most 30 s apart) for
up to TUNA_PUSH_RETRY_SECONDS (default 600); a refusal (401, 404, 422…) is not retried.
"""

import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request

# Answers that mean "the server is not there right now", worth another try.
RETRY_STATUSES = (502, 503, 504)
FIRST_DELAY = 0.5
MAX_DELAY = 30.0


def report(step=None, artifact=None, **metrics):
    api = os.environ.get("TUNA_API")
    if not api:
        return False
    # A custom resource's experiment is namespace/name: each name is one path segment.
    segment = lambda name: urllib.parse.quote(name, safe="")  # noqa: E731
    url = "{}/api/v1/experiments/{}/trials/{}/metrics".format(
        api.rstrip("/"), segment(os.environ["TUNA_EXPERIMENT"]), segment(os.environ["TUNA_TRIAL"]))
    body = {"metrics": {k: float(v) for k, v in metrics.items()}}
    if step is not None:
        body["step"] = int(step)
    if artifact is not None:
        body["artifact"] = str(artifact)
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json",
                 "Authorization": "Bearer " + os.environ["TUNA_TRIAL_TOKEN"]},
    )
    budget = float(os.environ.get("TUNA_PUSH_RETRY_SECONDS", "600"))
    deadline = time.monotonic() + budget
    delay = FIRST_DELAY
    while True:
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return bool(json.load(response).get("shouldStop", False))
        except urllib.error.HTTPError as e:
            if e.code not in RETRY_STATUSES or time.monotonic() + delay > deadline:
                raise
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            if time.monotonic() + delay > deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, MAX_DELAY)
