#!/usr/bin/env bash
# The real Label Studio server the review round-trip tests start on loopback, in its own
# virtualenv (.venv-labelstudio): its pins (Django, numpy, an older httpx) clash with ours,
# and raylabel itself talks to it over plain HTTP, so nothing of it enters .venv.
# Re-running is cheap: it reinstalls only when the pinned version below changes.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
want="label-studio==1.23.2"
stamp=".venv-labelstudio/.raylabel-installed"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
if [ ! -x .venv-labelstudio/bin/python ]; then
  "$PY" -m venv .venv-labelstudio
fi
.venv-labelstudio/bin/python -m pip install -q --upgrade pip
# label-studio brings label-studio-sdk, which the tests' "reviewer" uses to annotate
.venv-labelstudio/bin/python -m pip install -q "$want"
echo "$want" > "$stamp"
