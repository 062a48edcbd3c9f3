#!/usr/bin/env bash
# The tests, with everything they need installed (the README's test command; .ci/run runs it).
set -euo pipefail
cd "$(dirname "$0")/.."

# End-to-end tests run real trials: the quickstart training (python3, standard library only) and
# small sh scripts using sleep, date and kill.
if ! command -v python3 >/dev/null 2>&1; then
  apt-get update -qq && apt-get install -y -qq python3
fi
for tool in sh sleep date kill; do
  command -v "$tool" >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq coreutils procps; break; }
done

# The live display's test runs `tuna run` under a pseudo-terminal (util-linux `script`); the HTTPS
# test makes a CA and serves TLS with the openssl command.
command -v script >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq bsdutils; }
# Local trials start under util-linux's setpriv (they die with their tuna); a test checks it.
command -v setpriv >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq util-linux; }
command -v openssl >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq openssl; }

# The dashboard's browser tests drive Debian's Chromium headless (tests/dashboard.rs fails without it).
if [ ! -x /usr/bin/chromium ]; then
  apt-get update -qq && apt-get install -y -qq chromium
fi

# The Python checkers the tests run, in one venv (.venv-k8s, after the first of them): manifest
# tests validate every Kubernetes object with kubernetes-validate; the OpenAPI tests validate the
# served document with openapi-spec-validator and run schemathesis (bounded) against a live server.
if [ ! -x .venv-k8s/bin/kubernetes-validate ] || [ ! -x .venv-k8s/bin/openapi-spec-validator ] \
    || [ ! -x .venv-k8s/bin/schemathesis ]; then
  [ -x .venv-k8s/bin/pip ] || python3 -m venv .venv-k8s 2>/dev/null \
    || { apt-get update -qq && apt-get install -y -qq python3-venv && python3 -m venv .venv-k8s; }
  .venv-k8s/bin/pip install -q kubernetes-validate openapi-spec-validator schemathesis
fi

cargo test
