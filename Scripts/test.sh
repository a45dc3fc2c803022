#!/usr/bin/env bash
# Every test: set up, build the test kernel (or reuse the cache), run the host tests and the
# real-kernel suites inside QEMU, fuzz every parser of outside data for a minute each from the
# committed corpus, run the C shims under UBSan, and build and run the downstream example package
# in the guest.
set -euo pipefail
cd "$(dirname "$0")/.."
./Scripts/setup.sh
swift build --build-tests
.build/debug/kcovctl vm build
# The second kernel version: GuestSuiteTests runs the real-kernel and conformance suites on both.
.build/debug/kcovctl vm build --source 6.1
# The RealKernel* suites need the real device: GuestSuiteTests runs them inside the test kernel.
swift test --disable-xctest --skip RealKernel

echo "== Fuzzing: each parser's libFuzzer harness for 60 s (Scripts/fuzz.sh; a finding fails CI)"
./Scripts/fuzz.sh 60
echo "== The C shims under UndefinedBehaviorSanitizer (Scripts/sanitize.sh undefined)"
./Scripts/sanitize.sh undefined

echo "== Examples/TraceOneSyscall: a downstream package importing the library products"
swift build --package-path Examples/TraceOneSyscall
bin="$(swift build --package-path Examples/TraceOneSyscall --show-bin-path)"
"$bin/simulated-fuzz-loop"
output="$(.build/debug/kcovctl vm run -- "$bin/trace-one-syscall")"
printf '%s\n' "$output"
grep -q "^auto: .*: using the linux backend" <<<"$output" || { echo "example: FAILED: the library did not choose the linux backend" >&2; exit 1; }
grep -q "^read(-1) covered [1-9][0-9]* kernel PCs" <<<"$output" || { echo "example: FAILED: no kernel PCs reported" >&2; exit 1; }
[ "$(grep -c "^worker [01]: 100 calls, [1-9][0-9]* unique kernel PCs" <<<"$output")" = 2 ] || { echo "example: FAILED: the two workers did not both collect" >&2; exit 1; }
echo "example: passed"
