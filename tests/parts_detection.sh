#!/usr/bin/env bash
# No silent skips (issue 27): the optional parts of the build (the MPI tests: MULTOPT_MPI; the
# libtorch adapter's test and the Python module's tests: MULTOPT_TORCH) in a build folder that was
# configured while their packages were missing, as `./build.sh demo` leaves it before
# `./build.sh test` installs them, must come back once the packages are there; and
# `./build.sh test` must fail, naming each part, when they are truly missing and not turned off.
#
# The packages are hidden, not removed: each step that needs them absent runs in a private mount
# namespace whose /usr is an overlay with their files whited out, so nothing outside that one
# command sees a change. That needs root (as .ci/run has); the packages must be installed
# (./build.sh test installs them). Every step only configures (build.sh's CONFIGURE_ONLY=1):
# about half a minute in all. Run from anywhere: tests/parts_detection.sh
set -euo pipefail
cd "$(dirname "$0")/.."

hidden_packages=(openmpi-bin libopenmpi-dev libtorch-dev python3-torch pybind11-dev)
if [[ $(id -u) != 0 ]]; then
  echo "parts_detection: needs root (a mount namespace hides the packages)" >&2
  exit 1
fi
for p in "${hidden_packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    echo "parts_detection: $p is not installed (./build.sh test installs it)" >&2
    exit 1
  fi
done

work=$(mktemp -d /tmp/multopt-parts.XXXXXX)
trap 'rm -rf "$work"' EXIT
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }

# Runs a command with the files of hidden_packages gone from /usr (their directories stay, empty).
hidden() {
  dpkg -L "${hidden_packages[@]}" > "$work/hidden.list"
  mkdir -p "$work/overlay"
  # shellcheck disable=SC2016  # expanded by the inner bash
  unshare -m --propagation private bash -c '
    set -euo pipefail
    overlay=$1 list=$2; shift 2
    mount -t tmpfs multopt-parts "$overlay"
    mkdir "$overlay/upper" "$overlay/work"
    /usr/bin/python3 - "$overlay/upper" "$list" <<"EOF"
import os, stat, sys
upper, listing = sys.argv[1], sys.argv[2]
for path in open(listing).read().split("\n"):
    if path.startswith("/usr/") and os.path.lexists(path) and not os.path.isdir(path):
        whiteout = upper + path[len("/usr"):]
        os.makedirs(os.path.dirname(whiteout), exist_ok=True)
        os.mknod(whiteout, stat.S_IFCHR | 0o600, 0)  # an overlay whiteout: the file is gone
EOF
    mount -t overlay multopt-parts -o "lowerdir=/usr,upperdir=$overlay/upper,workdir=$overlay/work" /usr
    exec "$@"' _ "$work/overlay" "$work/hidden.list" "$@"
}

# The tests that each part adds, as ctest -N lists them.
part_tests=('mpi\.sharded\.np2' 'torch\.adapter' 'python\.pytest')
listed() { ctest --test-dir "$1" -N 2>/dev/null | grep -E '^ *Test +#' || true; }
expect_parts() {  # build folder, "on" or "off", what happened
  local tests test
  tests=$(listed "$1")
  for test in "${part_tests[@]}"; do
    if grep -qE "Test +#[0-9]+: $test\$" <<<"$tests"; then
      [[ $2 == on ]] || fail "$3: ctest -N lists $test"
    else
      [[ $2 == off ]] || fail "$3: ctest -N lists no $test"
    fi
  done
}
# Runs a command, its output in $work/log; says whether it succeeded as expected.
run() {  # "ok" or "fails", what it is, command...
  local expect=$1 what=$2 status=0
  shift 2
  echo "--- $what"
  "$@" > "$work/log" 2>&1 || status=$?
  if [[ $expect == ok && $status != 0 ]]; then
    cat "$work/log" >&2
    fail "$what: exit status $status"
  elif [[ $expect == fails && $status == 0 ]]; then
    cat "$work/log" >&2
    fail "$what: succeeded"
  fi
}
expect_said() {  # what, pattern that the output must hold (CMake wraps its messages: one line here)
  tr -s ' \n' '  ' < "$work/log" | grep -qE "$2" || fail "$1: the output does not say '$2'"
}

# 0. The hiding works: with the packages hidden, the parts are found missing (the cache of
#    issue 27's `./build.sh demo` before `./build.sh test` installed them).
a=$work/demo-then-test
run ok "./build.sh demo, packages hidden" hidden env CONFIGURE_ONLY=1 BUILD_DIR="$a" ./build.sh demo
expect_parts "$a" off "./build.sh demo, packages hidden"
expect_said "./build.sh demo, packages hidden" "MPI tests.*NOT built"
# 1. The same folder, the packages there: ./build.sh test gets every part.
run ok "then ./build.sh test, packages there" env CONFIGURE_ONLY=1 BUILD_DIR="$a" ./build.sh test
expect_parts "$a" on "then ./build.sh test, packages there"

# 2. Plain CMake: the default AUTO looks again at each configure.
b=$work/plain-cmake
run ok "cmake, packages hidden" hidden cmake -S . -B "$b"
expect_parts "$b" off "cmake, packages hidden"
run ok "then cmake, packages there" cmake -S . -B "$b"
expect_parts "$b" on "then cmake, packages there"

# 3. A folder whose parts were turned off by hand (or by an older multopt's option(), which kept
#    the OFF of its first configure): ./build.sh test turns them on.
c=$work/turned-off
run ok "cmake -DMULTOPT_MPI=OFF -DMULTOPT_TORCH=OFF" \
  cmake -S . -B "$c" -DMULTOPT_MPI:BOOL=OFF -DMULTOPT_TORCH:BOOL=OFF
expect_parts "$c" off "cmake -DMULTOPT_MPI=OFF -DMULTOPT_TORCH=OFF"
run ok "then ./build.sh test" env CONFIGURE_ONLY=1 BUILD_DIR="$c" ./build.sh test
expect_parts "$c" on "then ./build.sh test"

# 4. Truly missing and not turned off: ./build.sh test fails, naming each part.
d=$work/missing
run fails "./build.sh test, packages hidden" hidden env CONFIGURE_ONLY=1 BUILD_DIR="$d" ./build.sh test
expect_said "./build.sh test, packages hidden" "MULTOPT_MPI is ON but CMake found no MPI.*MPI tests"
expect_said "./build.sh test, packages hidden" "MULTOPT_TORCH is ON but CMake found no Torch.*libtorch adapter's"
expect_said "./build.sh test, packages hidden" "python\.pytest"
# 5. ... unless the caller turns them off; and each one alone.
run ok "./build.sh test -DMULTOPT_MPI=OFF -DMULTOPT_TORCH=OFF, packages hidden" hidden env CONFIGURE_ONLY=1 \
  BUILD_DIR="$d" CMAKE_ARGS="-DMULTOPT_MPI=OFF -DMULTOPT_TORCH=OFF" ./build.sh test
expect_parts "$d" off "./build.sh test -DMULTOPT_MPI=OFF -DMULTOPT_TORCH=OFF, packages hidden"
run fails "./build.sh test -DMULTOPT_TORCH=OFF, packages hidden" hidden env CONFIGURE_ONLY=1 \
  BUILD_DIR="$d" CMAKE_ARGS="-DMULTOPT_TORCH=OFF" ./build.sh test
expect_said "./build.sh test -DMULTOPT_TORCH=OFF, packages hidden" "MULTOPT_MPI is ON but CMake found no MPI"
grep -q "MULTOPT_TORCH is ON" "$work/log" && fail "./build.sh test -DMULTOPT_TORCH=OFF: an error about torch"

if ((failures)); then
  echo "parts_detection: $failures failures" >&2
  exit 1
fi
echo "parts_detection: all passed"
