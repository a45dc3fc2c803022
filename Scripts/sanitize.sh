#!/usr/bin/env bash
# The host test suite under AddressSanitizer, ThreadSanitizer and UndefinedBehaviorSanitizer, one
# after another (each a full build in its own scratch folder, .build-asan, .build-tsan, .build-ubsan;
# over ten minutes
# each on 2 cores). Swift modules are checked by ASan and TSan; the C targets (CKernelShim,
# CBufferProtection, CKcovFollowProtocol, KcovFollowAgent) by all three. The real-kernel and guest
# suites need a kcov device or a VM and are skipped (so the agent, which runs only in traced
# processes in the guest, is built instrumented but not run).
#
#   Scripts/sanitize.sh [address|thread|undefined ...]   (default: all three)
#   (address and thread skip GVisorSandboxTests: neither runtime starts inside runsc)
#
# A sanitizer report fails the run even when the tests pass: every report is a finding. Each
# run's output is in <scratch>/sanitize.log; the summary names the tests run and the reports.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$#" -gt 0 ] && sanitizers=("$@") || sanitizers=(address thread undefined)

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:halt_on_error=1}"
export LSAN_OPTIONS="${LSAN_OPTIONS:-suppressions=$PWD/Fuzz/lsan.supp:print_suppressions=0}"
export TSAN_OPTIONS="${TSAN_OPTIONS:-halt_on_error=0:second_deadlock_stack=1:suppressions=$PWD/Fuzz/tsan.supp}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"

failed=()
for sanitizer in "${sanitizers[@]}"; do
    case "$sanitizer" in
    address) scratch=.build-asan ;;
    thread) scratch=.build-tsan ;;
    undefined)
        mkdir -p .build-ubsan
        echo "== undefined: the C shims (Fuzz/UBSan/shims.c)"
        status=0
        clang -g -O1 -Wall -fsanitize=undefined -fno-sanitize-recover=all \
            -I Sources/CKernelShim/include -I Sources/CBufferProtection/include -I Sources/CKcovFollowProtocol/include \
            Fuzz/UBSan/shims.c Sources/CKernelShim/*.c Sources/CBufferProtection/*.c Sources/CKcovFollowProtocol/*.c \
            -o .build-ubsan/shims 2>&1 | grep -v "Cannot export local symbol" >&2 || true
        timeout -s KILL 120 .build-ubsan/shims >.build-ubsan/sanitize.log 2>&1 || status=$?
        cat .build-ubsan/sanitize.log
        [ "$status" -eq 0 ] || failed+=("undefined")
        continue
        ;;
    *) echo "sanitize.sh: '$sanitizer' is not address, thread or undefined" >&2; exit 2 ;;
    esac
    log="$scratch/sanitize.log"
    mkdir -p "$scratch"
    echo "== $sanitizer: building ($scratch)"
    swift build --build-tests --sanitize="$sanitizer" --scratch-path "$scratch" >"$scratch/build.log" 2>&1 || {
        echo "$sanitizer: FAILED to build; see $scratch/build.log" >&2
        tail -20 "$scratch/build.log" >&2
        failed+=("$sanitizer(build)")
        continue
    }
    echo "== $sanitizer: testing"
    status=0
    skips=(--skip RealKernel --skip GuestSuite)
    # GVisorSandboxTests run kcovctl inside runsc, where neither runtime can start: a hello-world
    # built with clang -fsanitize=address dies there ("AddressSanitizer: nested bug"), and TSan's
    # kcovctl faults reading 0xffffffffff700448 (the vsyscall page, which gVisor does not map).
    skips+=(--skip GVisorSandboxTests)
    swift test --skip-build --sanitize="$sanitizer" --scratch-path "$scratch" --disable-xctest "${skips[@]}" >"$log" 2>&1 || status=$?
    summary=$(grep -E '^.*Test run with [0-9]+ tests? ' "$log" | tail -1 || true)
    # Reports from kcovctl runs inside tests come indented in the tests' messages: not anchored.
    reports=$(grep -cE '==[0-9]+==ERROR: (Address|Leak)Sanitizer|WARNING: ThreadSanitizer|: runtime error: ' "$log" || true)
    echo "$sanitizer: exit $status; ${summary:-no test summary}; sanitizer reports: $reports"
    if [ "$status" -ne 0 ] || [ "$reports" -ne 0 ]; then
        grep -E -A12 '==[0-9]+==ERROR: (Address|Leak)Sanitizer|WARNING: ThreadSanitizer|: runtime error: ' "$log" | head -80 >&2 || true
        grep -E '✘|recorded an issue' "$log" | head -20 >&2 || true
        failed+=("$sanitizer")
    fi
done
if [ "${#failed[@]}" -gt 0 ]; then
    echo "sanitize: FAILED: ${failed[*]}" >&2
    exit 1
fi
echo "sanitize: passed (${sanitizers[*]})"
