# The libvirt test-driver fixture shared by libvirt.bats and
# libvirt_hook.bats (load after common.bash): two VFs with clat attached,
# two guests' tables (MEM1/BAT1, MEM2/BAT2), the VFs' PCI addresses, a
# domain MAC (VMMAC), and node files for libvirt's test driver
# (test:///abs/node.xml, no daemon).

HOOK=$ROOT/scripts/libvirt-qemu-hook
DATA=$ROOT/selftests/data

setup() {
	topo_create 2
	attach
	MEM1=$BATS_TEST_TMPDIR/vm1.mem
	MEM2=$BATS_TEST_TMPDIR/vm2.mem
	guest_init "$MEM1" conn:ctx=256,block=4096,services=2000
	BAT1=$BAT
	guest_init "$MEM2" conn:ctx=256,block=4096,services=1000
	BAT2=$BAT
	PCI=()
	local json i
	json=$("$VF_EMU" list "$PF" --json)
	for i in 0 1; do PCI[i]=$(jq -r ".vfs[$i].pci" <<<"$json"); done
	# A MAC that is not VF 0's own, so that setting it is visible.
	VMMAC=52:54:00:$(printf '%02x:%02x:%02x' $((RANDOM % 256)) $((RANDOM % 256)) $((RANDOM % 256)))
	PIN=/sys/fs/bpf/clat/$PF
	# Incoming-domain markers of the hook: the test's own.
	export CLAT_HOOK_STATE=$BATS_TEST_TMPDIR/hook
}

teardown() {
	reap
	rm -f /run/clat/migrate-"$PF"-fn*.lock
	rmdir /run/clat 2>/dev/null || true # only if no one else's lock is in it
	topo_destroy
}

# domain_xml NAME RUNSTATE MAC PCI MEM BAT [nometa]: one domain of the template
# (RUNSTATE 1 = running, 5 = shut off).
domain_xml() {
	local name=$1 state=$2 mac=$3 pci=$4 mem=$5 bat=$6 meta=${7:-}
	local d=${pci%%:*} rest=${pci#*:}
	local bus=${rest%%:*} slotfn=${rest#*:}
	local slot=${slotfn%.*} func=${slotfn#*.}
	sed -e "s|@NAME@|$name|" -e "s|@RUNSTATE@|$state|" -e "s|@MAC@|$mac|" \
		-e "s|@MEM@|$mem|" -e "s|@BAT@|$bat|" -e "s|@PCI_DOMAIN@|$d|" \
		-e "s|@PCI_BUS@|$bus|" -e "s|@PCI_SLOT@|$slot|" -e "s|@PCI_FUNC@|$func|" \
		"$DATA/libvirt-domain.xml.in" |
		if [ "$meta" = nometa ]; then sed '/<metadata>/,/<\/metadata>/d'; else cat; fi
}

# node_xml FILE [DOMAIN_XML_FILE...]: a test-driver node holding those domains.
node_xml() {
	local out=$1 domains
	shift
	domains=$(cat "$@" </dev/null)
	awk -v doms="$domains" '{ if ($0 == "@DOMAINS@") print doms; else print }' \
		"$DATA/libvirt-node.xml.in" >"$out"
}

# node NAME DOMAIN-ARGS...: test:/// URI of a node with one domain; "none" = no domain.
node() {
	local file=$BATS_TEST_TMPDIR/$1.xml
	shift
	if [ "$1" = none ]; then
		node_xml "$file"
	else
		domain_xml "$@" >"$file.dom"
		node_xml "$file" "$file.dom"
	fi
	echo "test://$file"
}

reconcile() {
	"$CLAT_LOAD" libvirt reconcile "$PF" "$@"
}

# fn_field FN JQ: a field of fn in `clat-load status --json`.
fn_field() {
	"$CLAT_LOAD" status "$PF" --json | jq -r --argjson fn "$1" ".fns[] | select(.fn == \$fn) | $2"
}

# The guest-tables record of fn, straight from the pinned map.
guests_bat() {
	bpftool -j map lookup pinned "$PIN/guests" key "$1" 0 0 0 | jq -r '.formatted.value.bat_gpa // .value.bat_gpa'
}

# flows MAC N FIRST_PORT: N UDP flows from the wire to the fn that MAC selects.
flows() {
	"$BIN/flowgen" --prog "$PIN/prog_rx" --dst-mac "$1" --src-mac 02:00:5e:00:00:01 \
		--vm-addr "${VM_IP[0]}" --vm-port 5000 --remote-addr "$WIRE_IP" --first-port "$3" \
		--count "$2" --proto udp >/dev/null
}

sum() { sha256sum "$1" | cut -d' ' -f1; }

# port_xml NAME RUNSTATE MAC DEV MEM BAT: a domain whose NIC is an ethernet
# interface on the tap (here: the port) DEV, as a VMM that opens a tap has it.
port_xml() {
	domain_xml "$1" "$2" "$3" "${PCI[0]}" "$5" "$6" |
		sed "/<interface type='hostdev'/,/<\/interface>/c\      <interface type='ethernet'><mac address='$3'/><target dev='$4' managed='no'/><model type='virtio'/></interface>"
}
