# The guest console protocol of the real-VM tests, shared by vm.bash (QEMU
# started by hand) and libvirt.bash (libvirt domains): guest/init reads one
# line at a time, evals it and prints "QF-DONE <rc>".

# console_cmd WHO SOCK OUT SECONDS CMD [ALIVE ARG]: runs the one-line CMD on
# the console behind unix socket SOCK; prints its output, returns its rc.
# The connection stays open until QF-DONE (QEMU drops unread input when a
# client leaves) and its output is read all along into OUT: unread, it
# stalls the guest's console after a few hundred bytes, and QEMU's console
# logfile is no substitute (7.2 logs a byte twice when a write would block).
# ALIVE ARG, if given, is called while waiting: non-zero stops the wait.
console_cmd() {
	local who=$1 sock=$2 out=$3 secs=$4 cmd=$5 alive=${6:-} arg=${7:-} rc i
	if [[ "$cmd" == *$'\n'* ]]; then
		echo "$who: one line only" >&2
		return 2
	fi
	: >"$out"
	{
		printf '%s\n' "$cmd"
		for ((i = 0; i < secs * 20; i++)); do
			grep -qa '^QF-DONE' "$out" && break
			[ -z "$alive" ] || "$alive" "$arg" || break
			sleep 0.05
		done
	} | socat - "UNIX-CONNECT:$sock" >"$out" || {
		echo "$who: failed to talk to the console" >&2
		return 1
	}
	rc=$(tr -d '\r' <"$out" | sed -n 's/^QF-DONE \([0-9]*\)$/\1/p' | head -1)
	if [ -z "$rc" ]; then
		echo "$who: no QF-DONE within ${secs}s for: $cmd" >&2
		return 1
	fi
	tr -d '\r' <"$out" | sed '/^QF-DONE [0-9]*$/,$d'
	return "$rc"
}

# console_wait_ready WHO LOG SECONDS [ALIVE ARG]: until the console log LOG
# shows QF-READY (guest/init's line once the guest is up).  ALIVE ARG, if
# given, is called while waiting: non-zero means the VMM died, and ends it.
console_wait_ready() {
	local who=$1 log=$2 secs=$3 alive=${4:-} arg=${5:-} i
	for ((i = 0; i < secs * 10; i++)); do
		grep -qa '^QF-READY' "$log" 2>/dev/null && return 0
		if [ -n "$alive" ] && ! "$alive" "$arg"; then
			echo "$who: the VMM exited before QF-READY; console:" >&2
			tail -40 "$log" >&2 2>/dev/null
			return 1
		fi
		sleep 0.1
	done
	echo "$who: no QF-READY within ${secs}s; console:" >&2
	tail -20 "$log" >&2 2>/dev/null
	return 1
}
