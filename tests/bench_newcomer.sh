#!/usr/bin/env bash
# The newcomer's two commands, timed as a new user meets them (docs/benchmarks.md, "Build"): a
# fresh clone of this repository's HEAD, an empty cargo home (every crate downloaded), an empty
# target dir and no pip cache; then `make demo` followed by `make test`. Not part of make bench
# (it is a cold build: most of half an hour on 2 cores). The Rust toolchain (rustup) is the
# machine's, as on a fresh machine. Usage: tests/bench_newcomer.sh [workdir, default /tmp/newcomer]
set -u
work="${1:-/tmp/newcomer}"
repo="$(cd "$(dirname "$0")/.." && pwd)"
rm -rf "$work" && mkdir -p "$work/cargo/bin"
git clone -q "$repo" "$work/clone"
cp -a "${CARGO_HOME:-$HOME/.cargo}/bin/." "$work/cargo/bin/"
export CARGO_HOME="$work/cargo" CARGO_TARGET_DIR="$work/target" PIP_NO_CACHE_DIR=1
export PATH="$work/cargo/bin:$PATH"
unset RUSTC_WORKSPACE_WRAPPER CLIPPY_ARGS
cd "$work/clone"
echo "commit $(git rev-parse --short HEAD), $(nproc) cores, start $(date -u +%T)"
start=$(date +%s); make demo > "$work/demo.log" 2>&1; demo_rc=$?; demo_s=$(( $(date +%s) - start ))
echo "make demo: exit $demo_rc in ${demo_s} s (log $work/demo.log)"
start=$(date +%s); make test > "$work/test.log" 2>&1; test_rc=$?; test_s=$(( $(date +%s) - start ))
echo "make test: exit $test_rc in ${test_s} s (log $work/test.log)"
echo "both: $(( demo_s + test_s )) s"
exit $(( demo_rc || test_rc ))
