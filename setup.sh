#!/usr/bin/env bash
# Set up a virtual environment, .venv, with the exact versions the project is tested with (constraints/lock.txt) and
# the project itself with every extra and the test tools:
#
#   bash setup.sh && .venv/bin/python train.py lr=1 epochs=100     # set up, then train
#   .venv/bin/python -m pytest -q                                   # the tests
#
# torch comes first, as the build for this machine: the CPU build where there is no NVIDIA GPU (PyPI's Linux wheels
# bundle CUDA, several GB), PyPI's own build where there is one, or always with TORCH=cuda. VENV=path and PYTHON=python3.x
# choose another folder or interpreter. Refresh the lock with `bash .ci/lock`.
set -euo pipefail
cd "$(dirname "$0")"
venv="${VENV:-.venv}"
torch_version=$(sed -n 's/^torch==//p' constraints/lock.txt)  # the one tested release, written once: in the lock

"${PYTHON:-python3}" -m venv "$venv"
pip=("$venv/bin/python" -m pip install --quiet)
"${pip[@]}" --upgrade pip
if [ "${TORCH:-auto}" = cuda ] || [ "$(uname -s)" = Darwin ] || command -v nvidia-smi >/dev/null; then
    "${pip[@]}" "torch==$torch_version"  # PyPI's build: CUDA on Linux, Metal on macOS
elif ! "${pip[@]}" --no-index --no-deps "torch==$torch_version" 2>/dev/null; then  # a CPU wheel this machine keeps
    "${pip[@]}" --index-url https://download.pytorch.org/whl/cpu "torch==$torch_version"
fi
"${pip[@]}" -c constraints/lock.txt -e ".[dev]"  # torch's own dependencies come from the lock too
echo "Set up in $venv: torch $("$venv/bin/python" -c 'import torch; print(torch.__version__)')"
