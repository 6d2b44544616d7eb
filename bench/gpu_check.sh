#!/usr/bin/env bash
# Run on a GPU machine (the H200 device tool): CUDA tests, then the CUDA benchmark (one JSON
# line). Installs nothing heavy: the machine has cupy-cuda13x, PyTorch, numpy, networkx and
# hypothesis; the project itself goes in with --no-deps.
set -uo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q --no-deps --no-build-isolation -e . 2>&1 | tail -1
export PYTHONUNBUFFERED=1
python3 -m pytest -q -p no:cacheprovider tests/test_cuda.py tests/test_compiler.py 2>&1 | tail -25
python3 bench/cuda.py --batch "${BATCH:-128}" --repeats "${REPEATS:-5}"
