"""Push metrics to tuna over HTTP with nothing but the Python standard library.

A trial started by `tuna serve` gets TUNA_API (the server's URL), TUNA_EXPERIMENT, TUNA_TRIAL and
TUNA_TRIAL_TOKEN (good for this trial only). `report(step=3, loss=0.2, accuracy=0.9)` posts one
set of values; `report(artifact="s3://bucket/model")` says where the trial saved its model (what a
promotion serves on Kubernetes). It returns the server's `shouldStop` answer. Outside tuna (no TUNA_API) it does
nothing and returns False, so a training script can call it unconditionally.
"""

import json
import os
import urllib.request


def report(step=None, artifact=None, **metrics):
    api = os.environ.get("TUNA_API")
    if not api:
        return False
    url = "{}/api/v1/experiments/{}/trials/{}/metrics".format(
        api.rstrip("/"), os.environ["TUNA_EXPERIMENT"], os.environ["TUNA_TRIAL"])
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
    with urllib.request.urlopen(request, timeout=10) as response:
        return bool(json.load(response).get("shouldStop", False))
