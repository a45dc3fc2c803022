#!/usr/bin/env bash
# Installs what KernelCoverage needs, skipping what is already there: from Debian, QEMU, the
# kernel source and its build tools (for the test kernel), gVisor's runsc, elfutils' libraries,
# binutils, lcov, chromium, stress-ng and every decompressor a bzImage's payload may need; Debian's
# stock cloud kernel, unpacked into the kernel cache (Scripts/stock-kernel.sh); from PyPI,
# junitparser (the JUnit XML consumer the tests check `kcovctl conformance --format junit` with)
# and pycobertura with lxml (the Cobertura XML consumer, and the DTD validator, the tests check
# `report --format cobertura` with).
set -euo pipefail

packages=(
  qemu-system-x86          # boots the test kernel
  util-linux               # setpriv --pdeathsig: QEMU is killed when kcovctl dies
  linux-source-6.12        # the test kernel's source
  linux-source-6.1         # the second test kernel (`kcovctl vm build --source 6.1`): kcov across versions
  kmod                     # insmod and rmmod: the guest loads the project's test module with them
  build-essential bc bison flex libelf-dev libssl-dev cpio xz-utils  # to build it
  runsc                    # gVisor (a release build, no kcov): the sandbox the gVisor tests run kcovctl in
  libdw-dev pkg-config     # libelf/libdw: the vmlinux reader and DWARF symbolizer link them
  binutils                 # addr2line and objdump: what the symbolizer and scanner are checked against
  llvm                     # llvm-symbolizer: the second opinion where binutils 2.40 misreads DWARF 5
  lcov                     # genhtml: what the LCOV output is checked with
  chromium                 # headless: renders the HTML report to a screenshot in the tests
  stress-ng                # a real forking, threading workload traced whole by `kcovctl trace --follow` in the guest
  gzip bzip2 lz4 lzop zstd # with xz-utils: a bzImage payload's decompressors (`--kernel`'s preflight reads its config)
)

missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done

if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: run as root (or with sudo) to install packages" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

./Scripts/stock-kernel.sh

if ! python3 -c "import junitparser" 2>/dev/null; then
  echo "setup: installing junitparser from PyPI"
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore "junitparser>=3,<6"
fi

if ! python3 -c "import pycobertura, lxml" 2>/dev/null; then
  echo "setup: installing pycobertura and lxml from PyPI"
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore "pycobertura>=3,<5" "lxml>=4.9,<7"
fi
