#!/usr/bin/env bash
# AArch64 (NEON) tests under qemu: cross-compiles a subset of the suite with Debian's
# g++-aarch64-linux-gnu and runs it with qemu-user: the golden trajectories, SIMD functions,
# bit-identity at any thread count and in a tensor's tail, and run-time dispatch (the one NEON
# kernel). Installs the cross compiler and qemu when run as root. Usage: .ci/arm.sh [build folder]
set -euo pipefail
cd "$(dirname "$0")/.."
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
# Two compilers at a time (CI's two cores); each object is one line of "file flags...".
objects=()
compile() {
  local source=$1 object=$out/$(basename "${1%.cpp}")$2.o
  shift 2
  objects+=("$object")
  "${cxx[@]}" "$@" -c "$source" -o "$object" &
  while (($(jobs -rp | wc -l) >= 2)); do wait -n; done
}
for type in float double bf16 fp16; do
  compile cmake/make_optimizer_$type.cpp "" -DMULTOPT_EXTERN_MAKE_OPTIMIZER
done
for test in main golden_test simd_test parallel_test packet_tail_test; do
  compile tests/$test.cpp "" -DMULTOPT_EXTERN_MAKE_OPTIMIZER
done
compile tests/dispatch/dispatch_test.cpp "" -DMULTOPT_DISPATCH
compile tests/dispatch/kernels.cpp _neon -DMULTOPT_KERNEL_ISA=neon
wait
aarch64-linux-gnu-g++ -fopenmp -o "$out/arm_tests" "${objects[@]:0:9}"
aarch64-linux-gnu-g++ -fopenmp -o "$out/arm_dispatch_tests" "$out/main.o" "${objects[@]:9}"
run=(qemu-aarch64 -L /usr/aarch64-linux-gnu)
"${run[@]}" "$out/arm_tests"
"${run[@]}" "$out/arm_dispatch_tests"
