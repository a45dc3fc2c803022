#!/usr/bin/env bash
# The main job on the embedded default: set up, build, trace a sample command in the project's own
# test kernel under QEMU (the kernel is built on first use, ~5 min, then cached), and report what it
# covered against every coverable PC of that kernel: a summary here, LCOV and HTML in .build/kcov-run.
set -euo pipefail
cd "$(dirname "$0")/.."
./Scripts/setup.sh
swift build --product kcovctl
kcovctl=.build/debug/kcovctl
vmlinux="$($kcovctl vm build | sed -n 's/^vmlinux: //p')"
out=.build/kcov-run
mkdir -p "$out"
$kcovctl trace --vm --format rawcover --output "$out/cat.cover" -- /bin/cat /proc/version
# genhtml 1.x (Debian 12's) reads lcov 1.x's function records; 2.x reads the default.
lcov_version=2
if genhtml --version 2>/dev/null | grep -q 'version 1\.'; then lcov_version=1; fi
$kcovctl report --vmlinux "$vmlinux" --format lcov --lcov-version "$lcov_version" --test-name cat --output "$out/cat.info" "$out/cat.cover"
$kcovctl report --vmlinux "$vmlinux" --format html --output "$out/html" "$out/cat.cover"
$kcovctl report --vmlinux "$vmlinux" --format summary --output "$out/cat.txt" "$out/cat.cover"
head -n 25 "$out/cat.txt"
echo "… the whole summary: $out/cat.txt   LCOV (for genhtml): $out/cat.info   HTML: $out/html/index.html"
