#!/usr/bin/env bash
# Fuzzes every parser of outside data with libFuzzer (Fuzz/README.md): builds the harness package
# Fuzz/ with every Swift module instrumented, then runs each harness from its committed corpus
# Fuzz/Corpus/<parser>/ (new inputs go to Fuzz/.build/corpus/<parser>/, never the committed one).
#
#   Scripts/fuzz.sh [SECONDS] [PARSER...]   each harness for SECONDS (default 60)
#   FUZZ_RUNS=1000000 Scripts/fuzz.sh 0     each harness for exactly that many executions
#
# Parsers: trace signal-set gvisor-symbolize kernel-image kernel-preflight kprobe-text maintainers (default: all).
# A thrown typed error is the harnesses' right answer; a trap, a crash, a timeout (-timeout=10 s
# per input) or more than 2 GB of memory is a finding: the input is saved under
# Fuzz/.build/findings/ and the script fails. Prints each harness's libFuzzer figures.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
shift || true
all=(trace signal-set gvisor-symbolize kernel-image kernel-preflight kprobe-text maintainers)
[ "$#" -gt 0 ] && parsers=("$@") || parsers=("${all[@]}")

# The Swift runtime's backtracer would take a trap's SIGILL before libFuzzer, which then saves no input.
export SWIFT_BACKTRACE=enable=no
flags=(-c release -Xswiftc -sanitize=fuzzer -Xswiftc -enable-testing)
swift build --package-path Fuzz "${flags[@]}"
bin="$(swift build --package-path Fuzz "${flags[@]}" --show-bin-path)"

target() {
    case "$1" in
    trace) echo FuzzTrace ;;
    signal-set) echo FuzzSignalSet ;;
    gvisor-symbolize) echo FuzzGVisorSymbolize ;;
    kernel-image) echo FuzzKernelImage ;;
    kernel-preflight) echo FuzzKernelPreflight ;;
    kprobe-text) echo FuzzKprobeText ;;
    maintainers) echo FuzzMaintainers ;;
    *) echo "fuzz.sh: no harness for '$1'; parsers: ${all[*]}" >&2; return 1 ;;
    esac
}

failed=()
mkdir -p Fuzz/.build/logs Fuzz/.build/findings
printf '%-17s %10s %8s %6s %6s %8s  %s\n' parser execs exec/s cov ft wall result
for parser in "${parsers[@]}"; do
    name="$(target "$parser")"
    work="Fuzz/.build/corpus/$parser"
    log="Fuzz/.build/logs/$parser.log"
    mkdir -p "$work"
    # ELF seeds are up to 20 KB; text formats need no more than 4 KB to reach every branch.
    maxlen=4096
    [ "$parser" = kernel-image ] || [ "$parser" = kernel-preflight ] && maxlen=20480
    limit=(-max_total_time="$seconds")
    [ -n "${FUZZ_RUNS:-}" ] && limit=(-runs="$FUZZ_RUNS")
    start=$(date +%s.%N)
    status=0
    "$bin/$name" "${limit[@]}" -timeout=10 -rss_limit_mb=2048 -max_len="$maxlen" -print_final_stats=1 \
        -artifact_prefix="Fuzz/.build/findings/$parser-" "$work" "Fuzz/Corpus/$parser" >"$log" 2>&1 || status=$?
    wall=$(echo "$(date +%s.%N) - $start" | bc)
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
    last=$(grep -E '^#[0-9]+' "$log" | tail -1)
    cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
    ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
    result=ok
    if [ "$status" -ne 0 ]; then
        result="FINDING (exit $status): $(grep -m1 -E 'Test unit written|ERROR: libFuzzer|deadly signal|Fatal error' "$log" || true); log $log"
        failed+=("$parser")
    fi
    printf '%-17s %10s %8s %6s %6s %7.0fs  %s\n' "$parser" "${execs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" "$wall" "$result"
done
if [ "${#failed[@]}" -gt 0 ]; then
    echo "fuzz: FAILED: ${failed[*]} (inputs in Fuzz/.build/findings/)" >&2
    exit 1
fi
echo "fuzz: passed"
