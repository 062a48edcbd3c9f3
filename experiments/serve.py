#!/usr/bin/env python3
"""Serve a model trained by train.py over HTTP (Python standard library only).

    python3 serve.py --model DIR --port PORT [--version v1]

GET /healthz answers 200 once the model is loaded. POST /predict takes {"features": [30 numbers]}
(raw, unstandardized values in the CSV's column order) or {"rows": [[...], ...]} and answers
{"version", "predictions": [{"probability", "label"}]}: the probability that the sample is benign
(target 1) and the label at a 0.5 threshold. tuna runs this under its switching proxy after a
promotion, with ${modelDir}, ${port} and ${version} substituted.
"""

import argparse
import json
import math
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def load(model_dir):
    with open(os.path.join(model_dir, "model.json")) as f:
        return json.load(f)


def predict(model, row):
    z = model["bias"]
    for x, m, s, w in zip(row, model["mean"], model["std"], model["weights"]):
        z += w * ((x - m) / (s or 1.0))
    z = max(-30.0, min(30.0, z))
    p = 1.0 / (1.0 + math.exp(-z))
    return {"probability": p, "label": int(p >= 0.5)}


def handler(model, version):
    width = len(model["weights"])

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def answer(self, status, body):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            if self.path == "/healthz":
                self.answer(200, {"status": "ok", "version": version})
            else:
                self.answer(404, {"error": "GET /healthz or POST /predict"})

        def do_POST(self):
            if self.path != "/predict":
                return self.answer(404, {"error": "POST /predict"})
            try:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                rows = body["rows"] if "rows" in body else [body["features"]]
                if any(len(r) != width for r in rows):
                    raise ValueError(f"each row needs {width} features")
                rows = [[float(x) for x in r] for r in rows]
            except (KeyError, ValueError, TypeError) as e:
                return self.answer(400, {"error": f"expected {{\"features\": [{width} numbers]}}: {e}"})
            self.answer(200, {"version": version, "predictions": [predict(model, r) for r in rows]})

    return Handler


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="folder holding model.json")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--version", default="v?")
    args = p.parse_args()
    model = load(args.model)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), handler(model, args.version))
    server.serve_forever()


if __name__ == "__main__":
    main()
