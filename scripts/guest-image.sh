#!/usr/bin/env bash
# guest-image.sh OUTDIR CLAT_GUEST KERNEL_DIR INIT: builds OUTDIR/initrd.gz
# (static busybox, the virtio modules of the guest kernel, clat-guest and
# INIT as /init) and OUTDIR/vmlinuz, a link to the kernel in KERNEL_DIR
# (scripts/guest-kernel.sh unpacks it).  Needs no cpio: busybox has one.
set -euo pipefail

out=$1 clat_guest=$2 kdir=$3 init=$4

die() {
	echo "guest-image: $*" >&2
	exit 1
}

busybox=$(command -v busybox) || die "busybox not found (apt-get install busybox-static)"
# The initramfs has no libc: only a static busybox runs there.
if ldd "$busybox" >/dev/null 2>&1; then
	die "$busybox is dynamically linked (apt-get install busybox-static)"
fi
vmlinuz=$(ls "$kdir"/boot/vmlinuz-* 2>/dev/null | sort -V | tail -1)
[ -n "$vmlinuz" ] || die "no guest kernel in $kdir (run scripts/guest-kernel.sh)"
ver=${vmlinuz##*/vmlinuz-}
mods=$kdir/lib/modules/$ver/kernel
[ -d "$mods" ] || die "no modules for $ver in $kdir/lib/modules"

tree=$(mktemp -d "$out/initrd.XXXXXX")
trap 'rm -rf "$tree"' EXIT
mkdir -p "$tree"/{bin,proc,sys,dev,tmp,lib/modules}
cp "$busybox" "$tree/bin/busybox"
cp "$clat_guest" "$tree/bin/clat-guest"
install -m 0755 "$init" "$tree/init"
for m in drivers/virtio/virtio_ring drivers/virtio/virtio drivers/virtio/virtio_pci_modern_dev \
	drivers/virtio/virtio_pci_legacy_dev drivers/virtio/virtio_pci net/core/failover \
	drivers/net/net_failover drivers/net/virtio_net drivers/char/virtio_console; do
	# Debian may ship modules compressed (.ko.xz); busybox insmod wants .ko.
	if [ -f "$mods/$m.ko" ]; then
		cp "$mods/$m.ko" "$tree/lib/modules/"
	elif [ -f "$mods/$m.ko.xz" ]; then
		xz -dc "$mods/$m.ko.xz" >"$tree/lib/modules/${m##*/}.ko"
	else
		die "module $m missing from $mods"
	fi
done
(cd "$tree" && find . | "$busybox" cpio -o -H newc -R 0:0 2>/dev/null | gzip -1) >"$out/initrd.gz.tmp"
mv "$out/initrd.gz.tmp" "$out/initrd.gz"
ln -sfn "$vmlinuz" "$out/vmlinuz"
