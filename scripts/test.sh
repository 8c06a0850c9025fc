#!/usr/bin/env bash
# The whole test suite, from a fresh clone: create .venv, install every extra the tests need,
# then lint (ruff), type-check the core (mypy), build the documentation site (mkdocs, strict,
# offline) and run pytest. Extra pytest arguments pass through.
set -euo pipefail
cd "$(dirname "$0")/.."

export LITELLM_LOCAL_MODEL_COST_MAP=True
export LLMROUTER_DATA_DIR="${LLMROUTER_DATA_DIR:-$(cd .. && pwd)/shared/data}"
export OMP_WAIT_POLICY=PASSIVE

PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
pip=".venv/bin/python -m pip"
$pip install --quiet --upgrade pip
# torch: only this version has a local CPU build on this kind of machine; any other pulls
# several GB of CUDA wheels. Installing it first makes the 'torch' extra's range a no-op.
$pip install --quiet "torch==2.13.0"
$pip install --quiet -e ".[embed,torch,langchain,llamaindex,dspy,ui,serve,litellm-proxy,datagen,dev,docs]"
# The browser test of the chat drives Debian's Chromium (Playwright's own browser download
# cannot work offline, so `playwright install` is never run).
command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium)
# The code sandbox of `llmrouter datagen` isolates with bubblewrap where it is installed.
command -v bwrap >/dev/null || (apt-get update -qq && apt-get install -y -qq bubblewrap) \
  || echo "bubblewrap not installed: the sandbox falls back to unshare / rlimits"
bash scripts/install_local.sh
# The serving tests start a real Redis (scale-out) on loopback.
command -v redis-server >/dev/null || (apt-get update -qq && apt-get install -y -qq redis-server)

echo "== ruff"
.venv/bin/ruff check .
echo "== mypy (core)"
.venv/bin/mypy llmrouter_core
echo "== mkdocs build --strict"
NO_MKDOCS_2_WARNING=1 .venv/bin/mkdocs build --strict --quiet
echo "== pytest"
.venv/bin/python -m pytest "$@"
