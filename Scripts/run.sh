#!/usr/bin/env bash
# The main job on the embedded default: set up, build, and trace a sample command in the project's
# own test kernel under QEMU (the kernel is built on first use, ~5 min, then cached).
set -euo pipefail
cd "$(dirname "$0")/.."
./Scripts/setup.sh
swift build --product kcovctl
.build/debug/kcovctl trace --vm --format summary -- /bin/cat /proc/version
