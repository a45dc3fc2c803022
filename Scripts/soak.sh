#!/usr/bin/env bash
# Flake hunt, run on demand (not in CI): the real-kernel suites and `kcovctl conformance --backend
# linux --vm` RUNS times (default 20), each run in fresh boots of the test kernel, and the number of
# failed runs. JOBS guests run at a time (default 1): a TCG guest keeps about one core busy, so on
# two cores `soak.sh 20 2` takes about half as long, each run under the other's load. Every log
# stays in SOAK_LOG_DIR (default .build/soak), and the failing tests of each failed run are named,
# so a check that ever fails can be found and fixed.
#   ./Scripts/soak.sh [RUNS [JOBS]]
set -uo pipefail
cd "$(dirname "$0")/.."
runs="${1:-20}"
jobs="${2:-1}"
[[ "$runs" =~ ^[1-9][0-9]*$ ]] || { echo "soak: RUNS must be a positive number, not '$runs'" >&2; exit 64; }
[[ "$jobs" =~ ^[1-9][0-9]*$ ]] || { echo "soak: JOBS must be a positive number, not '$jobs'" >&2; exit 64; }
./Scripts/setup.sh
swift build --build-tests || exit 1
.build/debug/kcovctl vm build || exit 1
tests="$(swift build --show-bin-path)/KernelCoveragePackageTests.xctest"
logs="${SOAK_LOG_DIR:-.build/soak}"
mkdir -p "$logs"
rm -f "$logs/failed-runs"

# One run: the suites in one guest, then conformance in another. Prints its line and records a
# failure in $logs/failed-runs.
soak_run() {
    local run="$1" suites=passed conformance=passed
    # One test at a time, as GuestSuiteTests runs them: the suites measure their own threads.
    if ! .build/debug/kcovctl vm run -- "$tests" --testing-library swift-testing --no-parallel --filter RealKernel \
        >"$logs/run-$run-suites.log" 2>&1; then
        suites="FAILED: $(grep -o '✘ Test [^ ]*' "$logs/run-$run-suites.log" | sort -u | cut -c8- | tr '\n' ' ')"
    fi
    if ! .build/debug/kcovctl conformance --backend linux --vm >"$logs/run-$run-conformance.log" 2>&1; then
        conformance="FAILED: $(grep -E '^ *FAIL' "$logs/run-$run-conformance.log" | tr '\n' ' ')"
    fi
    [ "$suites" = passed ] && [ "$conformance" = passed ] || echo "$run" >>"$logs/failed-runs"
    echo "soak: run $run of $runs at $(date -u +%H:%M:%S): real-kernel suites $suites; conformance $conformance"
}

# Job j takes runs j, j+JOBS, j+2*JOBS, …
for job in $(seq 1 "$jobs"); do
    (for run in $(seq "$job" "$jobs" "$runs"); do soak_run "$run"; done) &
done
wait
failed=$(cat "$logs/failed-runs" 2>/dev/null | wc -l)
echo "soak: $failed of $runs runs failed, $jobs at a time (logs in $logs)"
[ "$failed" -eq 0 ]
