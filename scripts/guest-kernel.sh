#!/usr/bin/env bash
# Unpacks Debian's cloud kernel for the real-VM tests into
# /var/lib/clat/guest-kernel (or $1): boot/vmlinuz-<ver> and lib/modules/<ver>.
# The package is fetched with `apt-get download` and opened with `dpkg-deb -x`:
# nothing is installed, so the host's /boot and its boot loader stay untouched.
# Idempotent: a complete unpack of the current version is left as it is.
set -euo pipefail

dest=${1:-/var/lib/clat/guest-kernel}

die() {
	echo "guest-kernel: $*" >&2
	exit 1
}

command -v apt-get >/dev/null || die "apt-get not found (Debian/Ubuntu only)"
# The meta package names exactly one versioned image: download that one, never
# a glob (a glob would fetch every version in the archive).
pkg=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null |
	sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*-cloud-amd64\)$/\1/p' | head -1)
[ -n "$pkg" ] || die "failed to find the kernel that linux-image-cloud-amd64 depends on (run apt-get update?)"
ver=${pkg#linux-image-}

if [ -f "$dest/boot/vmlinuz-$ver" ] && [ -f "$dest/lib/modules/$ver/modules.order" ]; then
	echo "guest-kernel: $pkg already unpacked in $dest" >&2
	exit 0
fi

work=$(mktemp -d /tmp/clat-guest-kernel.XXXXXX)
trap 'rm -rf "$work"' EXIT
# apt-get download writes into the current directory; _apt must be able to
# write there when apt drops privileges.
chmod 0755 "$work"
chown _apt "$work" 2>/dev/null || true
(cd "$work" && apt-get download -q "$pkg" >&2) || die "failed to download $pkg"
deb=$(ls "$work"/"$pkg"_*.deb 2>/dev/null | head -1)
[ -n "$deb" ] || die "failed to download $pkg: no .deb in $work"

# Unpack beside the destination and rename into place, so a reader never sees
# half a kernel tree.
mkdir -p "$(dirname "$dest")"
tmp=$dest.new.$$
rm -rf "$tmp"
dpkg-deb -x "$deb" "$tmp" || { rm -rf "$tmp"; die "failed to unpack $deb"; }
[ -f "$tmp/boot/vmlinuz-$ver" ] || { rm -rf "$tmp"; die "no boot/vmlinuz-$ver in $deb"; }
rm -rf "$dest.old"
[ ! -e "$dest" ] || mv "$dest" "$dest.old"
mv "$tmp" "$dest"
rm -rf "$dest.old"
echo "guest-kernel: unpacked $pkg into $dest" >&2
