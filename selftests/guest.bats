#!/usr/bin/env bats
# clat-guest: tables built in a guest memory file, read back, walked, and
# refused when a buggy or hostile guest damages them.  No BPF, no root needed.

load lib/common

CLAT_GUEST=${CLAT_GUEST:-$BIN/clat-guest}

setup() {
	DIR=$(mktemp -d "$BATS_TEST_TMPDIR/guest.XXXXXX")
	MEM=$DIR/mem
}

teardown() {
	rm -rf "$DIR"
}

guest() { "$CLAT_GUEST" "$@"; }

# init_tables SIZE SPEC...: builds $MEM, sets BAT and INIT (the JSON).
init_tables() {
	local size=$1 args=() s
	shift
	for s in "$@"; do args+=(--type "$s"); done
	INIT=$(guest init --mem "$MEM" --size "$size" --layout-seed 7 --json "${args[@]}") || return 1
	BAT=$(jq .bat_gpa <<<"$INIT")
}

# check_locate SVC TYPE: clat-guest locate agrees with clat-load locate, with
# the tables as shown, and every GPA it visits is page-aligned inside memory.
check_locate() {
	local svc=$1 type=${2:-0} loc ref t size a
	loc=$(guest locate --mem "$MEM" --bat-gpa "$BAT" --type "$type" --svc "$svc" --json)
	t=$(jq -c ".types[$type]" <<<"$INIT")
	size=$(jq .size <<<"$INIT")
	a=$(jq .ctx_size <<<"$t")
	ref=$("$CLAT_LOAD" locate --svc "$svc" --ctx-size "$a" --block-size "$(jq .block_size <<<"$t")" \
		--levels "$(jq .levels <<<"$t")" --clat-entries "$(jq .clat_entries <<<"$t")" --json)
	assert_equal "$(jq -c '[.levels[].offset]' <<<"$loc")" "$(jq -c .offsets <<<"$ref")"
	assert_equal "$(jq .element <<<"$loc")" "$(jq .element <<<"$ref")"
	# The walk starts at the type's CLAT and each entry leads to the next step.
	assert_equal "$(jq '.levels[0].page_gpa' <<<"$loc")" "$(jq .clat_gpa <<<"$t")"
	run jq -e --argjson size "$size" --argjson a "$a" '
		(.levels | length) as $n
		| ([.levels[] | .page_gpa, .value] + [.block_gpa] | all(. % 4096 == 0 and . > 0 and . < $size))
		and ([range(0; $n - 1) as $i | .levels[$i].value == .levels[$i + 1].page_gpa] | all)
		and .levels[$n - 1].value == .block_gpa
		and ([.levels[] | .entry_gpa == .page_gpa + 8 * .offset] | all)
		and .ctx_gpa == .block_gpa + (.element - 1) * $a
		and .bat_entry_gpa < $size' <<<"$loc"
	assert_success
}

# round_trip SIZE SPEC SVC...: init, show and locate agree.
round_trip() {
	local size=$1 spec=$2 show svc
	shift 2
	init_tables "$size" "$spec"
	show=$(guest show --mem "$MEM" --bat-gpa "$BAT" --json)
	assert_equal "$(jq .bat_gpa <<<"$show")" "$BAT"
	assert_equal "$(jq .generation <<<"$show")" 1
	assert_equal "$(jq -c '.types[0] | del(.live, .released, .contexts)' <<<"$show")" \
		"$(jq -c '.types[0]' <<<"$INIT")"
	assert_equal "$(jq -c '.types[0] | [.live, .released, (.contexts | length)]' <<<"$show")" \
		"[0,0,0]"
	for svc in "$@"; do
		check_locate "$svc"
	done
}

@test "clat-guest --help lists every command and each has --help" {
	local top c
	top=$(guest --help)
	for c in init show locate corrupt; do
		[[ "$top" == *"clat-guest $c "* ]]
		run guest $c --help
		assert_success
		assert_output --partial "--help"
	done
	run guest corrupt --help
	assert_output --partial "ctx-selfcheck"
	run guest frobnicate
	assert_equal "$status" 2
	assert_output --partial "unknown command 'frobnicate'"
}

@test "one level (the patent's 2K services): init, show and locate agree" {
	round_trip 16M conn:ctx=1K,block=4K,services=2048 1 4 5 100 1024 2047 2048
	assert_equal "$(jq '.types[0] | [.levels, .per_block, .blocks, .pages]' -c <<<"$INIT")" "[1,4,512,1]"
	run guest locate --mem "$MEM" --bat-gpa "$BAT" --svc 100 --json
	assert_equal "$(jq -c '[.levels[0].offset, .element]' <<<"$output")" "[24,4]"
}

@test "two levels (the patent's 16K services): init, show and locate agree" {
	round_trip 64M conn:ctx=1K,block=4K,services=16384,levels=2 1 4 5 2048 2049 2054 16383 16384
	assert_equal "$(jq '.types[0] | [.levels, .blocks, .pages]' -c <<<"$INIT")" "[2,4096,9]"
	run guest locate --mem "$MEM" --bat-gpa "$BAT" --type conn --svc 2054 --json
	assert_equal "$(jq -c '[.levels[].offset, .element]' <<<"$output")" "[1,1,2]"
}

@test "three levels with small pages: init, show and locate agree" {
	# P = 32, C = 7: a level-2 entry spans 224 services, a level-1 entry 1568.
	round_trip 16M sess:ctx=256,block=8K,services=5000,levels=3,entries=7,proto=tcp,seed=42 \
		1 32 33 224 225 1568 1569 2500 4999 5000
	assert_equal "$(jq -c '.types[0] | [.levels, .clat_entries, .blocks, .pages, .proto, .hash_seed]' <<<"$INIT")" \
		'[3,7,157,28,"tcp",42]'
}

@test "two types in one BAT are walked independently" {
	init_tables 32M conn:ctx=1K,block=4K,services=2000 dns:ctx=512,block=16K,services=900,entries=4
	assert_equal "$(jq -c '[.types[] | [.type, .name, .levels]]' <<<"$INIT")" '[[0,"conn",1],[1,"dns",3]]'
	check_locate 1 0
	check_locate 2000 0
	check_locate 1 1
	check_locate 33 1
	check_locate 900 1
	run guest locate --mem "$MEM" --bat-gpa "$BAT" --type dns --svc 900 --json
	assert_success
	assert_equal "$(jq .type <<<"$output")" 1
}

@test "pages and blocks are scattered over guest memory, page 0 never used" {
	local blocks pages t
	init_tables 16M conn:ctx=256,block=4K,services=1024,levels=3,entries=4
	# Block GPAs of consecutive blocks, and the level-3 pages in walk order.
	blocks=() pages=()
	for ((k = 0; k < 16; k++)); do
		t=$(guest locate --mem "$MEM" --bat-gpa "$BAT" --svc $((k * 16 + 1)) --json)
		blocks+=("$(jq .block_gpa <<<"$t")")
		pages+=("$(jq '.levels[2].page_gpa' <<<"$t")")
	done
	run jq -n --argjson b "[$(IFS=,; echo "${blocks[*]}")]" \
		'[range(0; ($b | length) - 1) as $i | $b[$i + 1] - $b[$i]] | any(. != 4096)'
	assert_output true
	run jq -n --argjson b "[$(IFS=,; echo "${blocks[*]}")]" '$b | sort == $b'
	assert_output false
	run jq -n --argjson p "[$(IFS=,; echo "${pages[*]}")]" '$p | unique | (length > 1 and (. != [.[0] + range(0; length) * 4096]))'
	assert_output true
	[ "$BAT" -ne 0 ]
	[ "$(jq '.types[0].clat_gpa' <<<"$INIT")" -ne 0 ]
}

@test "the layout is deterministic for a layout seed and hash seed" {
	local a b
	a=$(guest init --mem "$MEM" --size 8M --type c:ctx=1K,block=4K,services=500,seed=1 --layout-seed 3 --json)
	rm -f "$MEM"
	b=$(guest init --mem "$MEM" --size 8M --type c:ctx=1K,block=4K,services=500,seed=1 --layout-seed 3 --json)
	assert_equal "$a" "$b"
	rm -f "$MEM"
	b=$(guest init --mem "$MEM" --size 8M --type c:ctx=1K,block=4K,services=500,seed=1 --layout-seed 4 --json)
	[ "$(jq .bat_gpa <<<"$a")" != "$(jq .bat_gpa <<<"$b")" ] ||
		[ "$(jq .types[0].clat_gpa <<<"$a")" != "$(jq .types[0].clat_gpa <<<"$b")" ]
}

@test "the patent's worked examples through clat-load locate" {
	run "$CLAT_LOAD" locate --svc 100 --ctx-size 1024 --block-size 4096 --levels 1 --json
	assert_success
	assert_equal "$(jq -c . <<<"$output")" '{"svc":100,"offsets":[24],"element":4}'
	run "$CLAT_LOAD" locate --svc 2054 --ctx-size 1024 --block-size 4096 --levels 2 --clat-entries 512 --json
	assert_success
	assert_equal "$(jq -c . <<<"$output")" '{"svc":2054,"offsets":[1,1],"element":2}'
	run "$CLAT_LOAD" locate --svc 2054 --ctx-size 1024 --block-size 4096 --levels 2
	assert_success
	assert_output --partial "level 2 offset 1"
	assert_output --partial "element 2"
}

@test "clat-load locate refuses bad geometry and out-of-range services" {
	run "$CLAT_LOAD" locate --svc 0 --ctx-size 1024 --block-size 4096 --levels 1
	assert_equal "$status" 2
	assert_output --partial "invalid --svc 0"
	run "$CLAT_LOAD" locate --svc 2049 --ctx-size 1024 --block-size 4096 --levels 1
	assert_equal "$status" 2
	assert_output --partial "hold services 1..2048"
	run "$CLAT_LOAD" locate --svc 1 --ctx-size 1000 --block-size 4096 --levels 1
	assert_equal "$status" 2
	assert_output --partial "divide --block-size 4096"
	run "$CLAT_LOAD" locate --svc 1 --ctx-size 1024 --block-size 4096 --levels 5
	assert_equal "$status" 2
	assert_output --partial "invalid --levels 5"
	run "$CLAT_LOAD" locate --svc 1 --ctx-size 1024 --block-size 4096 --levels 1 --clat-entries 0
	assert_equal "$status" 2
	assert_output --partial "invalid --clat-entries 0"
	run "$CLAT_LOAD" locate --svc 1 --ctx-size 1024 --levels 1
	assert_equal "$status" 2
	assert_output --partial "--block-size is required"
}

@test "clat-guest refuses bad arguments with exit 2" {
	run guest init --size 1M --type a:ctx=1K,block=4K,services=8
	assert_equal "$status" 2
	assert_output --partial "--mem is required"
	run guest init --mem "$MEM" --size 12Q --type a:ctx=1K,block=4K,services=8
	assert_equal "$status" 2
	assert_output --partial "invalid --size '12Q'"
	run guest init --mem "$MEM" --size 1M
	assert_equal "$status" 2
	assert_output --partial "at least one --type"
	run guest init --mem "$MEM" --size 1M --type a:ctx=1001,block=4K,services=8
	assert_equal "$status" 2
	assert_output --partial "ctx=1001 must be a multiple of 8"
	run guest init --mem "$MEM" --size 1M --type a:ctx=1536,block=4K,services=8
	assert_equal "$status" 2
	assert_output --partial "context size A=1536 does not divide block size B=4096"
	run guest init --mem "$MEM" --size 1M --type a:ctx=1K,block=4K,services=8,colour=red
	assert_equal "$status" 2
	assert_output --partial "unknown key 'colour'"
	run guest init --mem "$MEM" --size 1M --type a:ctx=1K,block=4K,services=9,levels=1,entries=2
	assert_equal "$status" 2
	assert_output --partial "services=9 exceed P*C^N = 4*2^1 = 8"
	run guest init --mem "$MEM" --size 1M --type a:ctx=1K,block=4K,services=8 --type a:ctx=1K,block=4K,services=8
	assert_equal "$status" 2
	assert_output --partial "used twice"
	run guest init --mem "$MEM" --size 1M --type a:ctx=1K,block=4K,services=8,proto=icmp
	assert_equal "$status" 2
	assert_output --partial "expected tcp, udp or any"
	[ ! -e "$MEM" ]

	init_tables 1M a:ctx=1K,block=4K,services=8
	run guest locate --mem "$MEM" --bat-gpa "$BAT" --svc 0
	assert_equal "$status" 2
	assert_output --partial "invalid --svc '0'"
	run guest locate --mem "$MEM" --bat-gpa "$BAT" --svc 9
	assert_equal "$status" 2
	assert_output --partial "holds services 1..8"
	run guest locate --mem "$MEM" --bat-gpa "$BAT" --svc 1 --type nosuch
	assert_equal "$status" 2
	assert_output --partial "invalid --type 'nosuch'"
	run guest locate --mem "$MEM" --bat-gpa "$BAT" --svc 1 --type 1
	assert_equal "$status" 2
	assert_output --partial "the BAT has 1 types"
	run guest show --mem "$MEM"
	assert_equal "$status" 2
	assert_output --partial "--bat-gpa is required"
	run guest corrupt --mem "$MEM" --bat-gpa "$BAT" --kind frobnicate
	assert_equal "$status" 2
	assert_output --partial "invalid --kind 'frobnicate'"
	run guest show --mem "$MEM" --bat-gpa "$BAT" extra
	assert_equal "$status" 2
	assert_output --partial "unexpected argument 'extra'"
}

@test "init refuses a file of another size unless --force, and a file too small" {
	truncate -s 2M "$MEM"
	run guest init --mem "$MEM" --size 4M --type a:ctx=1K,block=4K,services=8
	assert_equal "$status" 1
	assert_output --partial "exists with size 2097152, not 4194304 (use --force"
	[ "$(stat -c %s "$MEM")" -eq 2097152 ]
	run guest init --mem "$MEM" --size 4M --type a:ctx=1K,block=4K,services=8 --force
	assert_success
	[ "$(stat -c %s "$MEM")" -eq 4194304 ]
	rm -f "$MEM"
	run guest init --mem "$MEM" --size 64K --type a:ctx=1K,block=4K,services=1000
	assert_equal "$status" 1
	assert_output --partial "failed to build guest tables"
	assert_output --partial "too small"
	[ ! -e "$MEM" ]
	ln -s /etc/passwd "$DIR/link"
	run guest show --mem "$DIR/link" --bat-gpa 4096
	assert_equal "$status" 1
	assert_output --partial "symlinks are refused"
}

@test "show lists live contexts (IPv4 and IPv6) and counts released ones" {
	local gpa show
	init_tables 4M conn:ctx=256,block=4K,services=100,entries=8,levels=2
	# svc 17: LIVE (tag 0x1234) TCP 10.0.0.1:80 <-> 192.0.2.7:40000,
	# established, fn 3; rx_queue past one byte (it is u16); window scale 7
	# in, windows 64 KiB in and 16 KiB out (wlog nibbles 5 and 3).
	gpa=$(guest locate --mem "$MEM" --bat-gpa "$BAT" --svc 17 --json | jq .ctx_gpa)
	write_ctx "$gpa" $(((0x1234 << 32) | 2)) "00000000000000000000ffff0a000001" \
		"00000000000000000000ffffc0000207" 80 40000 6 3 3 0 17 1000 2000 7 9 700 900 $((0x3507)) 258
	# svc 60: LIVE UDP over IPv6.
	gpa=$(guest locate --mem "$MEM" --bat-gpa "$BAT" --svc 60 --json | jq .ctx_gpa)
	write_ctx "$gpa" 2 "20010db8000000000000000000000001" "20010db8000000000000000000000002" \
		53 5353 17 0 4 0 60 5 6 1 1 100 120 0
	# svc 99: released (the device keeps the tag in the word), not listed.
	gpa=$(guest locate --mem "$MEM" --bat-gpa "$BAT" --svc 99 --json | jq .ctx_gpa)
	write_ctx "$gpa" $(((0x99 << 32) | 3)) "00000000000000000000ffff0a000001" \
		"00000000000000000000ffffc0000208" 81 40001 6 6 3 0 99 0 0 0 0 0 0 0

	show=$(guest show --mem "$MEM" --bat-gpa "$BAT" --json)
	assert_equal "$(jq -c '.types[0] | [.live, .released, [.contexts[].svc]]' <<<"$show")" '[2,1,[17,60]]'
	assert_equal "$(jq -c '.types[0].contexts[0] | [.state, .tag, .vm_addr, .vm_port, .remote_addr, .remote_port, .proto, .tcp_state, .fn, .type, .rx_queue, .packets_in, .packets_out, .bytes_in, .bytes_out, .window_in, .window_out, .first_seen_ns, .last_seen_ns]' <<<"$show")" \
		'["live",4660,"10.0.0.1",80,"192.0.2.7",40000,"tcp","established",3,0,258,7,9,700,900,65536,16384,1000,2000]'
	assert_equal "$(jq -c '.types[0].contexts[1] | [.vm_addr, .remote_addr, .remote_port, .proto, .tcp_state]' <<<"$show")" \
		'["2001:db8::1","2001:db8::2",5353,"udp","none"]'
	assert_equal "$(jq '.types[0].contexts[0].gpa' <<<"$show")" \
		"$(guest locate --mem "$MEM" --bat-gpa "$BAT" --svc 17 --json | jq .ctx_gpa)"
	run guest show --mem "$MEM" --bat-gpa "$BAT"
	assert_success
	assert_output --partial "live 2 released 1"
	assert_output --partial "svc 17 live tcp 10.0.0.1:80 <-> 192.0.2.7:40000 established fn 3"
	assert_output --partial "[2001:db8::1]:53 <-> [2001:db8::2]:5353"
}

# seed_flows COUNT FIRST_PORT: TCP flows 10.0.0.1:80 <-> 192.0.2.7:FIRST_PORT+i.
seed_flows() {
	guest seed --mem "$MEM" --bat-gpa "$BAT" --count "$1" --vm-addr 10.0.0.1 --vm-port 80 \
		--remote-addr 192.0.2.7 --first-port "$2" --proto tcp --json
}

@test "seed places flows in their buckets, finds them in every segment, new ones in the newest" {
	local show
	# 1000 services: 32 buckets of 32, the last one 8 slots (slots past 1000 unused).
	init_tables 8M conn:ctx=128,block=4K,services=1000,proto=tcp,seed=7
	run seed_flows 500 20000
	assert_success
	assert_equal "$(jq .seeded <<<"$output")" 500
	show=$(guest show --mem "$MEM" --bat-gpa "$BAT" --json)
	assert_equal "$(jq -c '.types[0] | [.live, .released]' <<<"$show")" '[500,0]'
	# One context per flow, each LIVE with a tag in 1..0xfffe and its own svc.
	run jq -e '.types[0].contexts | (map(.svc) | unique | length) == 500
		and all(.svc >= 1 and .svc <= 1000 and .state == "live" and .tag >= 1 and .tag <= 65534
			and .tcp_state == "established" and .type == 0)
		and (map(.remote_port) | sort) == [range(20000; 20500)]' <<<"$show"
	assert_success
	# A flow already placed is found (in either candidate bucket).
	run seed_flows 1 20123
	assert_equal "$status" 1
	assert_output --regexp "192\.0\.2\.7:20123: already present at svc [0-9]+"
	# Grow: blocks 1..32 hold services 1..1024, so the new segment is 1025..2000.
	guest grow --mem "$MEM" --bat-gpa "$BAT" --capacity 2000 --layout-seed 1 --json >/dev/null
	run seed_flows 100 30000
	assert_success
	show=$(guest show --mem "$MEM" --bat-gpa "$BAT" --json)
	run jq -e '[.types[0].contexts[] | select(.remote_port >= 30000) | .svc]
		| length == 100 and all(. >= 1025 and . <= 2000)' <<<"$show"
	assert_success
	# The old segment is still searched: no second copy of an old flow.
	run seed_flows 1 20000
	assert_equal "$status" 1
	assert_output --partial "already present at svc"
	# More flows than slots: both candidates of some flow are full.
	run seed_flows 2000 40000
	assert_equal "$status" 1
	assert_output --regexp "both candidate buckets \(svc [0-9]+\.\. and svc [0-9]+\.\.\) of segment 1 are full"
	assert_output --partial "flows before the failure"
}

# write_ctx GPA STATE_WORD VM_ADDR_HEX REMOTE_ADDR_HEX VM_PORT REMOTE_PORT PROTO
#   TCP_STATE FN TYPE SVC FIRST LAST PKT_IN PKT_OUT BYTES_IN BYTES_OUT
#   WSCALE_WLOG (wscale byte | wlog byte << 8) [RX_QUEUE]
# Writes one struct clat_ctx (128 bytes, little-endian) into $MEM.
write_ctx() {
	local gpa=$1
	{
		le "$2" 8       # state_word
		hex "$3"        # key
		hex "$4"
		be16 "$5"
		be16 "$6"
		le "$7" 1
		le 0 3
		le "${14}" 8    # packets[in], packets[out]
		le "${15}" 8
		le "${16}" 8    # bytes[in], bytes[out]
		le "${17}" 8
		le 0 16         # seq_next[2], ack_last[2]
		le "${12}" 8    # first_seen_ns, last_seen_ns
		le "${13}" 8
		le "$8" 1       # tcp_state
		le 0 3          # fin_mask, initiator, last_fin_dir
		le "$9" 2       # fn, type, svc
		le "${10}" 2
		le "${11}" 4
		le "${19:-0}" 2 # rx_queue, then wscale and wlog
		le "${18}" 2
	} | dd of="$MEM" bs=1 seek="$gpa" conv=notrunc status=none
}
le() { local v=$1 n=$2 i; for ((i = 0; i < n; i++)); do printf "\\x$(printf %02x $(((v >> (8 * i)) & 255)))"; done; }
be16() { printf "\\x$(printf %02x $(($1 >> 8)))\\x$(printf %02x $(($1 & 255)))"; }
hex() { local s=$1 i; for ((i = 0; i < ${#s}; i += 2)); do printf "\\x${s:i:2}"; done; }

# corrupt_case KIND SUBSTRING [SPEC]: a valid table is damaged by one kind;
# show then fails with exit 1 and a message naming that kind of damage, and
# nothing but the damaged bytes changed.
corrupt_case() {
	local kind=$1 want=$2 spec=${3:-conn:ctx=256,block=4K,services=300,levels=3,entries=4} size
	init_tables 4M "$spec" dns:ctx=1K,block=8K,services=40
	run guest show --mem "$MEM" --bat-gpa "$BAT"
	assert_success
	cp "$MEM" "$DIR/orig"
	run guest corrupt --mem "$MEM" --bat-gpa "$BAT" --kind "$kind"
	assert_success
	assert_output --partial "corrupted ($kind)"
	run guest show --mem "$MEM" --bat-gpa "$BAT"
	assert_equal "$status" 1
	assert_output --partial "failed to validate guest tables"
	assert_output --partial "$want"
	size=$(stat -c %s "$MEM")
	if [ "$kind" = truncated ]; then
		[ "$size" -lt "$(stat -c %s "$DIR/orig")" ]
		cmp -n "$size" "$MEM" "$DIR/orig"
	else
		[ "$(cmp -l "$MEM" "$DIR/orig" | wc -l)" -ge 1 ]
		[ "$(cmp -l "$MEM" "$DIR/orig" | wc -l)" -le 8 ]
	fi
	# locate validates too: it never walks damaged tables.
	run guest locate --mem "$MEM" --bat-gpa "$BAT" --svc 1
	assert_equal "$status" 1
	assert_output --partial "$want"
}

@test "hostile tables: a last-level GPA past the end of guest memory" {
	corrupt_case gpa-out-of-range "outside guest memory (size 0x400000)"
}

@test "hostile tables: a misaligned block GPA" {
	corrupt_case misaligned "misaligned (not a multiple of 4096)"
}

@test "hostile tables: a level-2 entry pointing back at the level-1 page (cycle)" {
	corrupt_case cycle "cycle: page at GPA"
	assert_output --partial "already visited (as the level 1 page 0)"
}

@test "hostile tables: a level-1 page pointing at itself (cycle, two levels)" {
	corrupt_case cycle "cycle: page at GPA" conn:ctx=256,block=4K,services=300,levels=2,entries=8
}

@test "hostile tables: two entries sharing one block" {
	corrupt_case shared-page "shared page: the block at GPA"
	assert_output --regexp "is also type 0 \(conn\) block 0 at GPA"
}

@test "hostile tables: a block that is the CLAT page itself" {
	corrupt_case shared-page "shared page: the block at GPA" conn:ctx=1K,block=4K,services=3,levels=1
	assert_output --partial "is also type 0 (conn) level 1 CLAT page"
}

@test "hostile tables: too many levels" {
	corrupt_case too-many-levels "too many levels: 5 (at most 4)"
}

@test "hostile tables: a context size that does not divide the block size" {
	corrupt_case ctx-not-dividing "does not divide block size B=4096"
}

@test "hostile tables: bad magic" {
	corrupt_case bad-magic "bad magic 0xdeadbeef"
}

@test "hostile tables: unsupported version" {
	corrupt_case bad-version "BAT version 2 is not supported (this clat reads version 3): rebuild the guest tables"
}

@test "hostile tables: guest memory truncated under the BAT" {
	corrupt_case truncated "truncated: header ends past guest memory"
}

@test "hostile tables: capacity does not match the entries present" {
	corrupt_case capacity-mismatch "capacity mismatch"
	# Full tables cannot grow: the capacity shrinks and an entry is extra.
	rm -f "$MEM"
	corrupt_case capacity-mismatch "extra entry" conn:ctx=1K,block=4K,services=8,levels=1,entries=2
}

@test "hostile tables: a context with an invalid slot state" {
	corrupt_case bad-ctx-state "invalid slot state 7"
}

@test "hostile tables: a live context that lies about its service number" {
	corrupt_case ctx-selfcheck "claims svc"
}
