#!/usr/bin/env bash
# Sets up qwenimage on a fresh machine: a virtual environment in .venv with the CPU build of torch
# (pinned through requirements/constraints.txt, so no multi-GB CUDA wheel is pulled) and the package
# with its test extras. Re-running it is cheap: pip skips what is already installed.
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3}

# Fonts for the synthetic text engine (CJK sans/serif, kai, Latin handwriting) and headless Chromium for
# report screenshots. Needs apt and root; skipped otherwise.
FONT_PACKAGES="fonts-noto-cjk fonts-wqy-zenhei fonts-arphic-ukai fonts-dejavu-core fonts-liberation2 fonts-comic-neue fonts-dancingscript fonts-humor-sans chromium"
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  missing=$(for p in $FONT_PACKAGES; do dpkg -s "$p" >/dev/null 2>&1 || echo "$p"; done)
  if [ -n "$missing" ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
  fi
else
  echo "install.sh: not root or no apt-get: install the fonts yourself ($FONT_PACKAGES)" >&2
fi

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
