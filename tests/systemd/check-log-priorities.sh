#!/bin/sh
# The log as journald and syslog-less hosts see it (issue 13, point 8):
# under JOURNAL_STREAM a usage error carries <3> (err), a stop on request
# is <5> (notice) and no line repeats its level in words beside the <N>;
# with --syslog a failed start still says why on stderr.
#   sh tests/systemd/check-log-priorities.sh   (run by make check)
set -u
bin=${TCPMUX_BIN:-./src/tcp-multiplexer}
[ -x "$bin" ] || { echo "check-log-priorities: $bin not built" >&2; exit 99; }
work=$(mktemp -d "${TMPDIR:-/tmp}/logprio.XXXXXX")
pids=
cleanup()
{
	for p in $pids; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
	rm -rf "$work"
}
trap cleanup EXIT
trap "exit 1" INT TERM HUP PIPE
fail() { echo "check-log-priorities: FAIL: $*" >&2; for f in "$work"/*.err; do [ -f "$f" ] && { echo "--- $f"; cat "$f"; }; done; exit 1; }

# Waits up to 10 s for a line matching $2 in file $1 and prints it.
wait_line()
{
	i=0
	while [ "$i" -lt 200 ]; do
		line=$(grep -m1 -e "$2" "$1" 2>/dev/null) && { printf '%s\n' "$line"; return 0; }
		i=$((i + 1))
		sleep 0.05
	done
	return 1
}

# 1. A usage error: exit status 2, at err priority.
JOURNAL_STREAM=8:1 "$bin" server --allow 10.0.0.0/33 2>"$work/usage.err"
rc=$?
[ "$rc" = 2 ] || fail "a usage error exited with $rc, not 2"
head -n1 "$work/usage.err" | grep -q '^<3>tcp-multiplexer: .*--allow' ||
	fail "a usage error under journald is not at <3>: $(head -n1 "$work/usage.err")"

# 2. A routine stop: notice, not warnings; no "warn:" beside a <N>.
JOURNAL_STREAM=8:1 "$bin" server -p echo -t 127.0.0.1:9 -l 127.0.0.1:0 -v 2>"$work/run.err" &
daemon=$!
pids="$daemon"
wait_line "$work/run.err" 'listening on 127\.0\.0\.1:[0-9]' >/dev/null || fail "the daemon did not start"
kill -TERM "$daemon"
wait "$daemon"
rc=$?
pids=
[ "$rc" = 0 ] || fail "SIGTERM: exit status $rc"
grep -q '^<5>received .*stopping' "$work/run.err" || fail "no <5> line for the signal"
grep -q '^<5>stopped$' "$work/run.err" || fail "no <5> stopped line"
if grep -E 'stop' "$work/run.err" | grep -qv '^<5>'; then
	fail "a routine stop logged above notice: $(grep -E 'stop' "$work/run.err" | grep -v '^<5>')"
fi
grep -vq '^<[0-7]>' "$work/run.err" && fail "a line without a <N> prefix under journald"
grep -Eq '^<[0-7]>(error|warn|notice|info|debug): ' "$work/run.err" &&
	fail "a level name beside the <N> prefix: $(grep -E '^<[0-7]>(error|warn|notice|info|debug): ' "$work/run.err" | head -n1)"

# 3. --syslog, the port taken: the reason is on stderr too (no syslog
# daemon is needed for this to hold, and none may be running).
"$bin" server -p echo -t 127.0.0.1:9 -l 127.0.0.1:0 -v 2>"$work/holder.err" &
holder=$!
pids="$holder"
line=$(wait_line "$work/holder.err" 'listening on 127\.0\.0\.1:[0-9]') || fail "the port holder did not start"
port=$(printf '%s\n' "$line" | sed 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/')
timeout 10 "$bin" server --syslog -p echo -t 127.0.0.1:9 -l "127.0.0.1:$port" 2>"$work/syslog.err"
rc=$?
[ "$rc" = 1 ] || fail "a taken port under --syslog exited with $rc, not 1"
grep -q "error: cannot listen on 127.0.0.1:$port" "$work/syslog.err" ||
	fail "under --syslog the failed start said nothing on stderr"
echo "check-log-priorities: usage error at <3>, stop at <5>, no level words beside <N>, --syslog failure on stderr"
exit 0
