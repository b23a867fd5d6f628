#!/usr/bin/env bash
# Runs the README's main command, `make bench`, in a fresh Debian 12 (bookworm) root made with
# debootstrap, on a clean clone of this repository, with nothing but `python3` installed: the
# system python is externally managed and has neither venv nor pip, as on a stock Debian or Ubuntu
# machine. The Makefile must install what it needs (python3-venv, iverilog, yosys) and run.
#
# Usage (as root, with debootstrap installed and network access to Debian and PyPI):
#   scripts/check-stock-debian.sh [ROOT_DIR] [MAKE_TARGET]   (defaults: /tmp/hiergym-deb12 bench)
# Site CA certificates under /usr/local/share/ca-certificates (a TLS-inspecting proxy) are copied
# into the root; nothing else of this machine is (the environment is cleared with env -i).
set -euo pipefail
root="${1:-/tmp/hiergym-deb12}"
target="${2:-bench}"
repo="$(cd "$(dirname "$0")/.." && pwd)"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
[ "$(id -u)" -eq 0 ] || { echo "run as root (debootstrap and chroot need it)" >&2; exit 2; }
command -v debootstrap >/dev/null || { echo "install debootstrap first" >&2; exit 2; }
if [ ! -x "$root/bin/bash" ]; then
  debootstrap --variant=minbase --include=ca-certificates,make,git bookworm "$root" "$mirror"
fi
cleanup() { umount -R "$root/dev" "$root/proc" "$root/tmp" 2>/dev/null || true; }
trap cleanup EXIT
mountpoint -q "$root/proc" || mount -t proc proc "$root/proc"
mountpoint -q "$root/dev" || mount --rbind /dev "$root/dev"
mountpoint -q "$root/tmp" || mount -t tmpfs tmpfs "$root/tmp"
cp /etc/resolv.conf "$root/etc/resolv.conf"
if ls /usr/local/share/ca-certificates/*.crt >/dev/null 2>&1; then
  mkdir -p "$root/usr/local/share/ca-certificates"
  cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
  chroot "$root" update-ca-certificates >/dev/null
fi
rm -rf "$root/root/hiergym"
git clone -q "$repo" "$root/root/hiergym"
run() {
  chroot "$root" /usr/bin/env -i HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt DEBIAN_FRONTEND=noninteractive /bin/bash -c "$1"
}
# The stock state: python3 only (externally managed, no ensurepip, no pip).
run "apt-get update -qq && apt-get install -y -qq --no-install-recommends python3 >/dev/null"
run "test -f /usr/lib/python3.11/EXTERNALLY-MANAGED && ! python3 -c 'import ensurepip' 2>/dev/null"
echo "stock Debian 12 root at $root: python3 $(run 'python3 -c "import sys; print(sys.version.split()[0])"'), externally managed, no venv"
run "cd /root/hiergym && make $target"
echo "make $target passed in a stock Debian 12 root"
