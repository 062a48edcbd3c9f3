"""Drives experiments/tuna_push.py against a scripted HTTP server (run by tests/push_client.rs).

The server answers 503 twice, then 200 with shouldStop true; a second server only starts
listening a second after the push began; a third answers 401. Prints one JSON line of what was
seen, which the Rust test checks.
"""

import http.server
import json
import os
import socket
import sys
import threading
import time

sys.path.insert(0, sys.argv[1])
import tuna_push  # noqa: E402


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(port, answers, seen):
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (the stdlib's name)
            body = self.rfile.read(int(self.headers["Content-Length"]))
            seen.append({"path": self.path, "body": json.loads(body),
                         "auth": self.headers["Authorization"]})
            status = answers.pop(0) if answers else 200
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(json.dumps({"shouldStop": True} if status == 200 else {"error": {}}).encode())

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def push(port):
    os.environ.update({"TUNA_API": f"http://127.0.0.1:{port}", "TUNA_EXPERIMENT": "team-a/mnist",
                       "TUNA_TRIAL": "team-a/mnist-0003", "TUNA_TRIAL_TOKEN": "t0ken",
                       "TUNA_PUSH_RETRY_SECONDS": "20"})
    return tuna_push.report(step=3, loss=0.25)


result = {}
seen = []
port = free_port()
serve(port, [503, 503], seen)
result["busy"] = {"should_stop": push(port), "attempts": len(seen), "first": seen[0]}

late_seen = []
port = free_port()
timer = threading.Timer(1.0, lambda: serve(port, [], late_seen))
timer.start()
started = time.monotonic()
result["late"] = {"should_stop": push(port), "attempts": len(late_seen),
                  "waited": time.monotonic() - started}

refused_seen = []
port = free_port()
serve(port, [401, 401, 401], refused_seen)
try:
    push(port)
    result["refused"] = {"raised": None}
except Exception as e:  # noqa: BLE001 — what was raised is the result
    result["refused"] = {"raised": type(e).__name__, "attempts": len(refused_seen)}
print(json.dumps(result))
