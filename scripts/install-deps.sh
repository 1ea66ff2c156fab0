#!/usr/bin/env bash
# Installs every Debian package that the build, the demo and the tests use.
# Idempotent: safe to run again; apt-get skips what is already installed.
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
	echo "install-deps: must be run as root (apt-get)" >&2
	exit 1
fi

packages=(
	# build
	make gcc clang llvm pkg-config libc6-dev linux-libc-dev
	libbpf-dev libelf-dev zlib1g-dev libmnl-dev libxdp-dev bpftool
	libvirt-dev libvirt-clients libxml2-dev
	# tests and demo
	bats bats-assert bats-support jq iproute2 iputils-ping socat ethtool util-linux procps
	coreutils
	# selftests/ops.bats: prometheus_client's text parser checks `clat-load metrics`,
	# curl scrapes --listen, groff/man render the man pages.  (systemd-analyze
	# verifies the units where systemd is installed; the package is not pulled
	# in here, as it adds system users and unit links to a machine that does
	# not run it: without it the test parses the units as INI files.)
	python3-prometheus-client curl groff-base man-db
	# make bench: plots
	gnuplot-nox file
	# make fuzz, selftests/fuzz.sh: libFuzzer + sanitizer runtimes for clang 14
	libclang-rt-14-dev
	# make check SANITIZE=1: gcc's ASan/LSan and UBSan runtimes (gcc-12 pulls
	# them in through libgcc-12-dev; named so the dependency is explicit)
	libasan8 libubsan1
	# real-VM tests (selftests/vm.bats): QEMU under TCG, a static busybox for
	# the initramfs, socat for the serial console and QMP sockets
	qemu-system-x86 busybox-static
	# libvirt's daemons without systemd: -system-sysv instead of systemd-sysv
	# (the machine's PID 1 is not systemd); recommends are left out below
	libvirt-daemon-system libvirt-daemon-system-sysv libvirt-daemon-driver-qemu
)

export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends "${packages[@]}"

# The BPF filesystem is where clat pins its maps and links.
if ! mountpoint -q /sys/fs/bpf; then
	mount -t bpf bpf /sys/fs/bpf
fi

# The guest kernel of the real-VM tests: unpacked, never installed.
"$(dirname "$0")/guest-kernel.sh"
