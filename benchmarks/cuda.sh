#!/usr/bin/env bash
# multopt.torch on a GPU (docs/pytorch.md), in one go of a few minutes: builds the Python module
# for a Python whose torch sees the GPU, runs the CUDA tests of tests/python/test_foreach.py (every
# base x rule on CUDA tensors against the fused CPU loop; it fails if they skip), then
# benchmarks/torch_peers.py --device cuda (ns per element: torch.optim.Adam foreach and fused, the
# torch-ops and, where installed, the paper's package's MAdam and HAdam, multopt.torch).
#
#   benchmarks/cuda.sh [OUT_DIR]     (default: $OUT if set, else BUILD_DIR/results)
#
# Environment: PYTHON (default python3: a Python with a CUDA torch, and pybind11 installed or
# Debian's pybind11-dev), BUILD_DIR (default build-cuda), REPS (5), STEPS (5).
# Saves machine.txt, cmake.log, build.log, pytest.txt and torch_peers.txt.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
python=$(command -v "${PYTHON:-python3}")
build=${BUILD_DIR:-$root/build-cuda}
out=${1:-${OUT:-$build/results}}
mkdir -p "$out"

"$python" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'torch ' + torch.__version__ + ' of $python sees no GPU')"
{ date -u +%Y-%m-%dT%H:%M:%SZ; nvidia-smi 2>/dev/null || true
  "$python" -c "import torch; print('torch', torch.__version__, 'CUDA', torch.version.cuda, torch.cuda.get_device_name())"; } \
  > "$out/machine.txt"
# The module is built against this Python's torch (and pybind11, where pip installed it).
prefix=$("$python" -c "import torch.utils; print(torch.utils.cmake_prefix_path)")
prefix+=$("$python" -c "import pybind11; print(';' + pybind11.get_cmake_dir())" 2>/dev/null || true)
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DMULTOPT_TORCH=ON -DMULTOPT_BUILD_TESTS=OFF \
      -DMULTOPT_BUILD_BENCHMARKS=OFF -DMULTOPT_BUILD_EXAMPLES=OFF -DMULTOPT_BUILD_TOOLS=OFF \
      -DPython_EXECUTABLE="$python" -DCMAKE_PREFIX_PATH="$prefix" > "$out/cmake.log"
cmake --build "$build" --target _multopt -j"$(nproc)" > "$out/build.log"
export PYTHONPATH=$build/python

"$python" -m pytest -q -p no:cacheprovider -rs -k cuda "$root/tests/python/test_foreach.py" 2>&1 | tee "$out/pytest.txt"
if grep -q skipped "$out/pytest.txt"; then echo "cuda.sh: CUDA tests were skipped" >&2; exit 1; fi
"$python" "$root/benchmarks/torch_peers.py" --device cuda --repetitions "${REPS:-5}" --steps "${STEPS:-5}" \
  | tee "$out/torch_peers.txt"
