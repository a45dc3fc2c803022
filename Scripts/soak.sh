#!/usr/bin/env bash
# Flake hunt, run on demand (not in CI): the real-kernel suites and `kcovctl conformance --backend
# linux --vm` RUNS times in a row (default 20), each in a fresh boot of the test kernel, and the
# number of failed runs. Every log stays in SOAK_LOG_DIR (default .build/soak), and the failing
# tests of each failed run are named, so a check that ever fails can be found and fixed.
#   ./Scripts/soak.sh [RUNS]
set -uo pipefail
cd "$(dirname "$0")/.."
runs="${1:-20}"
[[ "$runs" =~ ^[1-9][0-9]*$ ]] || { echo "soak: RUNS must be a positive number, not '$runs'" >&2; exit 64; }
./Scripts/setup.sh
swift build --build-tests || exit 1
.build/debug/kcovctl vm build || exit 1
tests="$(swift build --show-bin-path)/KernelCoveragePackageTests.xctest"
logs="${SOAK_LOG_DIR:-.build/soak}"
mkdir -p "$logs"

failed=0
for run in $(seq 1 "$runs"); do
    suites=passed conformance=passed
    # One test at a time, as GuestSuiteTests runs them: the suites measure their own threads.
    if ! .build/debug/kcovctl vm run -- "$tests" --testing-library swift-testing --no-parallel --filter RealKernel \
        >"$logs/run-$run-suites.log" 2>&1; then
        suites="FAILED: $(grep -o '✘ Test [^ ]*' "$logs/run-$run-suites.log" | sort -u | cut -c8- | tr '\n' ' ')"
    fi
    if ! .build/debug/kcovctl conformance --backend linux --vm >"$logs/run-$run-conformance.log" 2>&1; then
        conformance="FAILED: $(grep -E '^ *FAIL' "$logs/run-$run-conformance.log" | tr '\n' ' ')"
    fi
    [ "$suites" = passed ] && [ "$conformance" = passed ] || failed=$((failed + 1))
    echo "soak: run $run of $runs at $(date -u +%H:%M:%S): real-kernel suites $suites; conformance $conformance"
done
echo "soak: $failed of $runs runs failed (logs in $logs)"
[ "$failed" -eq 0 ]
