#!/usr/bin/env bash
# Sets up qwenimage on a fresh machine: a virtual environment in .venv with the CPU build of torch
# (pinned through requirements/constraints.txt, so no multi-GB CUDA wheel is pulled) and the package
# with its test extras. Re-running it is cheap: pip skips what is already installed.
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
. .venv/bin/activate
export PIP_DISABLE_PIP_VERSION_CHECK=1
pip install -q -c requirements/constraints.txt torch
pip install -q -c requirements/constraints.txt -e ".[test]"
if pip list 2>/dev/null | grep -q '^nvidia-'; then
  echo "install.sh: a CUDA build of torch slipped in (nvidia-* packages found)" >&2
  exit 1
fi
echo "qwenimage installed in $(pwd)/.venv"
