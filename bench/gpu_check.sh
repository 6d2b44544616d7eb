#!/usr/bin/env bash
# The GPU check, in one run on a machine with an NVIDIA GPU (e.g. the H200 device tool):
#   bash bench/gpu_check.sh     # writes everything under $OUT (default: gpu_out/ in the checkout)
# Steps: nvidia-smi; install the project with --no-deps (nothing is downloaded: the machine
# needs CuPy for CUDA 13, PyTorch with CUDA, numpy, networkx, hypothesis, llvmlite already);
# the environment (pip freeze, versions, device); the GPU tests (`pytest -m gpu
# tests/test_cuda.py tests/test_nccl.py`: every kernel vs the numpy backend for AlexNet both
# variants forward and training step, MLP, logistic regression and random programs; eager
# device="cuda" tensors vs CPU; NCCL allreduce and DataParallel on device="cuda"); then
# bench/cuda.py (N=128 conv1 block and paper AlexNet training step vs PyTorch/cuDNN,
# each kernel against the device's limits), whose JSON line goes to $OUT/bench-cuda.json.
# Every step has its own time limit and the whole run stops by $BUDGET seconds (default 450);
# a failing step is recorded in $OUT/summary.txt and the next one still runs. Exit status 0
# only when every step passed.
set -u
OUT="${OUT:-$(dirname "$0")/../gpu_out}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
cd "$(dirname "$0")/.."
BUDGET="${BUDGET:-450}"
PYTHON="${PYTHON:-python3}"
: >"$OUT/summary.txt"
export PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INDEX=1
export HYPOTHESIS_PROFILE="${HYPOTHESIS_PROFILE:-dev}"  # the fixed examples CI runs
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # the checkout, even if the install fails
failed=0

# step NAME LIMIT_S LOG COMMAND...: run COMMAND under `timeout`, output to $OUT/LOG, one line in
# summary.txt (rc 124: it ran past its limit; rc 125: no time left in $BUDGET to start it)
step() {
  local name=$1 limit=$2 log=$3 start=$SECONDS rc
  shift 3
  local left=$((BUDGET - SECONDS))
  ((limit > left)) && limit=$left
  if ((limit < 5)); then
    echo "not started: no time left in BUDGET=${BUDGET}s" >"$OUT/$log"
    rc=125
  else
    echo "== $name (limit ${limit}s) -> $OUT/$log"
    timeout -k 10 "$limit" "$@" >"$OUT/$log" 2>&1
    rc=$?
  fi
  ((rc != 0)) && failed=1
  printf '%-8s rc=%-3s %4ss  %s\n' "$name" "$rc" "$((SECONDS - start))" "$log" >>"$OUT/summary.txt"
  tail -n "${TAIL:-12}" "$OUT/$log"
  return 0
}

if command -v nvidia-smi >/dev/null; then
  step gpu 30 nvidia-smi.txt nvidia-smi
else
  echo "nvidia-smi: not found (no NVIDIA driver on this machine)" >"$OUT/nvidia-smi.txt"
  printf '%-8s rc=%-3s %4ss  %s\n' gpu 127 0 nvidia-smi.txt >>"$OUT/summary.txt"
  failed=1
fi
step install 120 pip-install.txt \
  "$PYTHON" -m pip install --no-index --no-deps --no-build-isolation -e .
step freeze 60 pip-freeze.txt "$PYTHON" -m pip freeze
step env 90 env.txt "$PYTHON" - <<'EOF'
import platform, sys
print("python", sys.version.split()[0], platform.machine())
import compiler, numpy
print("tinygrad_edu from", compiler.__file__, "| numpy", numpy.__version__)
try:
    import cupy
    rt = cupy.cuda.runtime
    props = rt.getDeviceProperties(0)
    print("cupy", cupy.__version__, "| CUDA runtime", rt.runtimeGetVersion(),
          "| driver", rt.driverGetVersion(), "| devices", rt.getDeviceCount())
    print("device 0:", props["name"].decode(), f"sm_{props['major']}{props['minor']}",
          props["multiProcessorCount"], "SMs,", props["totalGlobalMem"] // 2**30, "GiB")
except Exception as e:
    print("no GPU/CuPy:", type(e).__name__, e)
    sys.exit(1)
try:
    import torch
    print("torch", torch.__version__, "| cuda available", torch.cuda.is_available())
except ImportError:
    print("torch: not installed")
EOF
step tests 220 pytest-gpu.txt \
  "$PYTHON" -m pytest -v -p no:cacheprovider -m gpu -rs --durations=15 tests/test_cuda.py \
  tests/test_nccl.py \
  --junitxml="$OUT/pytest-gpu.xml"
if grep -q "SKIPPED.*no GPU/CuPy" "$OUT/pytest-gpu.txt"; then
  echo "tests    GPU tests were skipped: no GPU/CuPy (see env.txt)" >>"$OUT/summary.txt"
  failed=1
fi
step bench 180 bench-cuda.log \
  "$PYTHON" bench/cuda.py --batch "${BATCH:-128}" --repeats "${REPEATS:-3}"
grep '^{"benchmark"' "$OUT/bench-cuda.log" >"$OUT/bench-cuda.json" ||
  echo '{"benchmark": "tinygrad_edu cuda", "error": "no JSON line: see bench-cuda.log"}' \
    >"$OUT/bench-cuda.json"
echo "== summary (total ${SECONDS}s of BUDGET=${BUDGET}s; files in $OUT)"
cat "$OUT/summary.txt"
exit "$failed"
