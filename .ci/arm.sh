#!/usr/bin/env bash
# AArch64 (NEON) tests under qemu: cross-compiles tests with Debian's g++-aarch64-linux-gnu and
# runs them with qemu-user. By default the tests that prove the NEON path, as CI runs them: the
# SIMD functions (tanh, the packet math) and the step loop through the NEON kernel against the
# baseline, bit for bit (dispatch). With --full also the golden trajectories, bit-identity at any
# thread count and in a tensor's tail (these need the four make_optimizer libraries; the time it
# takes is in docs/integration.md). Installs the cross compiler and qemu when run as root.
# Usage: .ci/arm.sh [--full] [build folder]
set -euo pipefail
cd "$(dirname "$0")/.."
full=0
if [[ ${1:-} == --full ]]; then
  full=1
  shift
fi
out=${1:-build-arm}
packages=(g++-aarch64-linux-gnu qemu-user catch2 libeigen3-dev)
if ! dpkg -s "${packages[@]}" >/dev/null 2>&1; then
  if [[ $(id -u) != 0 ]]; then
    echo "arm.sh: needs: sudo apt-get install ${packages[*]}" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}" >/dev/null
fi
mkdir -p "$out"
cxx=(aarch64-linux-gnu-g++ -std=c++17 -O2 -DNDEBUG -fopenmp -Wall -Wextra -Wpedantic -Werror -Iinclude -Itools
     -isystem /usr/include/eigen3 -DMULTOPT_TEST_DATA="\"$PWD/tests/data\"")
# Two compilers at a time (CI's two cores).
objects=()
compile() {
  local source=$1 object=$out/$(basename "${1%.cpp}")$2.o
  shift 2
  objects+=("$object")
  "${cxx[@]}" "$@" -c "$source" -o "$object" &
  while (($(jobs -rp | wc -l) >= 2)); do wait -n; done
}
compile tests/main.cpp ""
compile tests/simd_test.cpp ""
compile tests/dispatch/dispatch_test.cpp "" -DMULTOPT_DISPATCH
compile tests/dispatch/kernels.cpp _neon -DMULTOPT_KERNEL_ISA=neon
if ((full)); then
  for type in float double bf16 fp16; do
    compile cmake/make_optimizer_$type.cpp "" -DMULTOPT_EXTERN_MAKE_OPTIMIZER
  done
  for test in golden_test parallel_test packet_tail_test; do
    compile tests/$test.cpp "" -DMULTOPT_EXTERN_MAKE_OPTIMIZER
  done
fi
wait
link() { aarch64-linux-gnu-g++ -fopenmp -o "$out/$1" "$out/main.o" "${@:2}"; }
link arm_simd_tests "$out/simd_test.o"
link arm_dispatch_tests "$out/dispatch_test.o" "$out/kernels_neon.o"
run=(qemu-aarch64 -L /usr/aarch64-linux-gnu)
"${run[@]}" "$out/arm_simd_tests"
"${run[@]}" "$out/arm_dispatch_tests"
if ((full)); then
  link arm_tests "${objects[@]:4}"
  "${run[@]}" "$out/arm_tests"
fi
