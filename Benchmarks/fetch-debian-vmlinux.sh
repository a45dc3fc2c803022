#!/usr/bin/env bash
# Fetches the vmlinux of Debian's cloud-amd64 kernel with full DWARF (the -dbg package, ~590 MB
# unpacked) for the symbolizer benchmark's second case, and prints its path. Run on demand, never in
# CI: `swift run -c release --package-path Benchmarks kcov-benchmarks --vmlinux PATH --debian-vmlinux "$(Benchmarks/fetch-debian-vmlinux.sh)"`.
# The package is the one Debian's meta-package linux-image-cloud-amd64-dbg depends on (or $1, a
# package name); it is downloaded with apt-get download into ${KCOV_BENCH_CACHE:-~/.cache/kernel-coverage-bench}
# and only its vmlinux is kept.
set -euo pipefail
cache="${KCOV_BENCH_CACHE:-$HOME/.cache/kernel-coverage-bench}"
mkdir -p "$cache"
package="${1:-}"
if [[ -z "$package" ]]; then
  package="$(apt-cache depends linux-image-cloud-amd64-dbg 2>/dev/null | awk '/Depends: linux-image-.*-dbg/ { print $2; exit }')"
  [[ -n "$package" ]] || { echo "no linux-image-*-cloud-amd64-dbg package known to apt: run apt-get update first" >&2; exit 1; }
fi
vmlinux="$cache/$package/vmlinux"
if [[ ! -s "$vmlinux" ]]; then
  work="$(mktemp -d "$cache/download.XXXXXX")"
  trap 'rm -rf "$work"' EXIT
  (cd "$work" && apt-get download "$package" >&2)
  deb="$(ls "$work"/*.deb)"
  mkdir -p "$work/root"
  dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$work/root" --wildcards './usr/lib/debug/boot/vmlinux-*'
  mkdir -p "$cache/$package"
  mv "$(ls "$work"/root/usr/lib/debug/boot/vmlinux-* | head -1)" "$vmlinux.partial"
  mv "$vmlinux.partial" "$vmlinux"
fi
echo "$vmlinux"
