#!/usr/bin/env bash
# Unpacks Debian's stock cloud kernel (the image linux-image-cloud-amd64 depends on today) into the
# kernel cache, as debian-cloud-kernel/vmlinuz-RELEASE and config-RELEASE: the real kernel the
# preflight tests expect `--kernel` to refuse in seconds, naming what it lacks (no 9p, no kcov,
# virtio PCI only as a module), with its config given as `--kernel-config`. Setup.sh calls it.
set -euo pipefail

cache="${KCOV_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kernel-coverage}"
target="$cache/debian-cloud-kernel"

package="$(apt-cache depends linux-image-cloud-amd64 2>/dev/null | awk '$1 == "Depends:" && $2 ~ /^linux-image-/ { print $2; exit }')"
if [ -z "$package" ]; then
  echo "stock-kernel: apt knows no linux-image-cloud-amd64: run apt-get update" >&2
  exit 1
fi
if [ "$(cat "$target/package" 2>/dev/null)" = "$package" ]; then
  exit 0
fi

echo "stock-kernel: unpacking $package into $target"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && apt-get download -q "$package" 2>&1 | grep -v "^W: Download is performed unsandboxed" || true)
deb="$(ls "$work"/*.deb 2>/dev/null | head -n 1)"
if [ -z "$deb" ]; then
  echo "stock-kernel: apt-get download $package fetched nothing: run apt-get update" >&2
  exit 1
fi
dpkg-deb -x "$deb" "$work/root"
mkdir -p "$cache"
rm -rf "$target.partial"
mkdir "$target.partial"
cp "$work"/root/boot/vmlinuz-* "$work"/root/boot/config-* "$target.partial/"
echo "$package" >"$target.partial/package"
# Only this script's own folder is replaced; the test kernels beside it stay.
rm -rf "$target"
mv "$target.partial" "$target"
