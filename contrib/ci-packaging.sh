#!/usr/bin/env bash
# CI for the packaging, on a fresh Debian 12 machine as root: build the .deb
# from the release tarball (make dist), check it with lintian, install it,
# run the installed daemon against a simulated target, exercise the service
# (systemd when it is running, else the System V init script), and check
# the systemd units with systemd-analyze.
#   bash contrib/ci-packaging.sh          (after .ci/run, or on its own)
# Every step has a deadline; the whole run takes a few minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD
export DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8

[ "$(id -u)" = 0 ] || { echo "ci-packaging: run as root (it installs packages)" >&2; exit 1; }

work=$(mktemp -d /tmp/ci-packaging.XXXXXX)
pids=()
restore_default=
started_unit=
cleanup()
{
	local pid
	for pid in "${pids[@]}"; do
		kill "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	if [ -n "$started_unit" ]; then
		systemctl stop "$started_unit" 2>/dev/null || true
		rm -f /etc/tcp-multiplexer/ci.conf
	fi
	[ -z "$restore_default" ] || cp "$restore_default" /etc/default/tcp-multiplexer
	rm -rf "$work"
}
trap cleanup EXIT

step() { printf '\n=== %s\n' "$*"; }
die() { echo "ci-packaging: FAILED: $*" >&2; exit 1; }
show_tail() { echo "---- last lines of $1"; tail -n "${2:-60}" "$1"; }

# Waits until file $1 has a line matching the extended regex $2 and prints
# the first capture group of $3 (a sed -E expression) from it; fails after
# $4 seconds.
wait_for_line()
{
	local file=$1 re=$2 expr=$3 deadline=$((SECONDS + $4)) line
	while [ "$SECONDS" -le "$deadline" ]; do
		line=$(grep -E -m1 -e "$re" "$file" 2>/dev/null || true)
		if [ -n "$line" ]; then
			sed -E -e "$expr" <<<"$line"
			return 0
		fi
		sleep 0.1
	done
	return 1
}

# Sends one echo line to 127.0.0.1:$1 and checks that it comes back.
echo_roundtrip()
{
	local port=$1 text="hello from ci-packaging $$" reply=''
	exec 3<>"/dev/tcp/127.0.0.1/$port" || return 1
	printf '%s\n' "$text" >&3
	IFS= read -r -t 10 reply <&3 || true
	exec 3<&- 3>&-
	[ "$reply" = "$text" ] || { echo "sent '$text', got '$reply'" >&2; return 1; }
}

# A loopback port nobody listens on (from /proc, no extra tools).
free_port()
{
	local used='' p _ addr st
	for p in /proc/net/tcp /proc/net/tcp6; do
		[ -r "$p" ] || continue
		while read -r _ addr _ st _; do
			[ "$st" = 0A ] && used+="$((16#${addr##*:}))"$'\n'
		done < <(tail -n +2 "$p")
	done
	for p in $(seq 25020 25220); do
		grep -qx "$p" <<<"$used" || { echo "$p"; return 0; }
	done
	return 1
}

step "apt: build and test dependencies"
timeout 900 apt-get update -qq
timeout 900 apt-get install -y -qq --no-install-recommends \
	build-essential autoconf automake pkg-config check \
	debhelper dpkg-dev fakeroot lintian systemd \
	>"$work/apt.log" 2>&1 || { show_tail "$work/apt.log"; die "apt-get install"; }

step "release tarball (make dist)"
if [ ! -f Makefile ]; then
	autoreconf -fi >"$work/autoreconf.log" 2>&1 || { show_tail "$work/autoreconf.log"; die autoreconf; }
	./configure >"$work/configure.log" 2>&1 || { show_tail "$work/configure.log"; die configure; }
fi
timeout 600 make dist >"$work/dist.log" 2>&1 || { show_tail "$work/dist.log"; die "make dist"; }
version=$(sed -n 's/^PACKAGE_VERSION = //p' Makefile)
tarball=tcp-multiplexer-$version.tar.gz
tar -xzf "$tarball" -C "$work"
src=$work/tcp-multiplexer-$version
[ -f "$src/debian/control" ] || die "$tarball has no debian/ (EXTRA_DIST in contrib/local.mk)"

step "dpkg-buildpackage -us -uc -b (runs make check)"
(cd "$src" && timeout 1800 dpkg-buildpackage -us -uc -b) >"$work/build.log" 2>&1 || {
	show_tail "$work/build.log" 100
	find "$src" -name test-suite.log -exec cat {} + 2>/dev/null || true
	die "dpkg-buildpackage"
}
grep -E '^(PASS|SKIP|FAIL|ERROR|# [A-Z]+:)' "$work/build.log" || true
deb=$(ls "$work"/tcp-multiplexer_"${version}"*_*.deb)
changes=$(ls "$work"/tcp-multiplexer_"${version}"*_*.changes)
echo "built $(basename "$deb")"
# .ci/run boots this very package under systemd afterwards.
if [ -n "${CI_PACKAGING_KEEP:-}" ]; then
	mkdir -p "$CI_PACKAGING_KEEP" && cp "$deb" "$CI_PACKAGING_KEEP/"
fi
dpkg-deb --contents "$deb" | awk '{ print $NF }'

step "lintian (fails on E: and W:)"
lintian_rc=0
timeout 600 lintian --fail-on error,warning --info --display-info "$changes" "$deb" \
	>"$work/lintian.txt" 2>&1 || lintian_rc=$?
grep -v '^running with root privileges' "$work/lintian.txt" || true
[ "$lintian_rc" = 0 ] || die "lintian reported errors or warnings (status $lintian_rc)"
echo "lintian: no errors, no warnings"

step "apt-get install ./$(basename "$deb")"
(cd "$work" && timeout 600 apt-get install -y -qq "./$(basename "$deb")") >"$work/install.log" 2>&1 || {
	show_tail "$work/install.log"
	die "apt-get install"
}
grep -i -E 'tcp-multiplexer|not starting' "$work/install.log" || true
[ -x /usr/sbin/tcp-multiplexer ] || die "/usr/sbin/tcp-multiplexer is missing"
/usr/sbin/tcp-multiplexer version
for f in /lib/systemd/system/tcp-multiplexer.service /lib/systemd/system/tcp-multiplexer@.service \
	/etc/init.d/tcp-multiplexer /etc/default/tcp-multiplexer /etc/tcp-multiplexer/example.conf \
	/usr/share/man/man8/tcp-multiplexer.8.gz /usr/share/bash-completion/completions/tcp-multiplexer \
	/usr/share/doc/tcp-multiplexer/examples/inverter.conf; do
	[ -e "$f" ] || die "the package did not install $f"
done

step "the installed daemon against a simulated echo target"
sim=$top/tests/sim-target
if [ ! -x "$sim" ]; then
	timeout 600 make tests/sim-target >"$work/sim-build.log" 2>&1 || { show_tail "$work/sim-build.log"; die "make tests/sim-target"; }
fi
"$sim" -p echo >"$work/sim.out" 2>"$work/sim.err" &
pids+=($!)
sim_port=$(wait_for_line "$work/sim.out" '^port [0-9]+' 's/^port ([0-9]+).*/\1/' 10) ||
	{ cat "$work/sim.err"; die "sim-target printed no port"; }
echo "sim-target (echo) on port $sim_port"

/usr/sbin/tcp-multiplexer server -p echo -t "127.0.0.1:$sim_port" -l 127.0.0.1:0 -v 2>"$work/daemon.err" &
daemon=$!
pids+=("$daemon")
port=$(wait_for_line "$work/daemon.err" 'listening on 127\.0\.0\.1:[0-9]+' 's/.*listening on 127\.0\.0\.1:([0-9]+).*/\1/' 10) ||
	{ cat "$work/daemon.err"; die "the daemon did not report its port"; }
echo "tcp-multiplexer listening on port $port"
echo_roundtrip "$port" || { cat "$work/daemon.err"; die "echo through the installed daemon"; }
echo "echo round trip: ok"
kill -USR1 "$daemon"
wait_for_line "$work/daemon.err" 'stats: ' 's/.*(stats: .*)/\1/' 10 || die "SIGUSR1 wrote no statistics"
kill -TERM "$daemon"
rc=0
wait "$daemon" || rc=$?
[ "$rc" = 0 ] || { cat "$work/daemon.err"; die "the daemon exited with $rc after SIGTERM, not 0"; }
echo "SIGTERM: exit status 0"

if [ -d /run/systemd/system ]; then
	step "systemd: the units, live"
	# Installed with no TARGET: enabled, and skipped by its ExecCondition.
	systemctl show -p ActiveState -p Result tcp-multiplexer.service
	[ "$(systemctl show -p ActiveState --value tcp-multiplexer.service)" != active ] ||
		die "tcp-multiplexer.service runs without a configured target"
	mkdir -p /etc/tcp-multiplexer
	printf '%s\n' PROTOCOL=echo "TARGET=127.0.0.1:$sim_port" LISTEN=127.0.0.1:0 'OPTIONS="-v --timeout 5s"' \
		>/etc/tcp-multiplexer/ci.conf
	started_unit=tcp-multiplexer@ci.service
	timeout 60 systemctl start "$started_unit" || {
		journalctl -u "$started_unit" --no-pager | tail -20
		die "systemctl start $started_unit"
	}
	# Type=notify: start returned after READY=1, so the port is in the log
	# of this very invocation.
	invocation=$(systemctl show -p InvocationID --value "$started_unit")
	journalctl "_SYSTEMD_INVOCATION_ID=$invocation" --no-pager -o cat >"$work/journal.txt" 2>&1 || true
	port=$(wait_for_line "$work/journal.txt" 'listening on 127\.0\.0\.1:[0-9]+' 's/.*listening on 127\.0\.0\.1:([0-9]+).*/\1/' 1) || {
		sleep 2 # journald may lag behind
		journalctl "_SYSTEMD_INVOCATION_ID=$invocation" --no-pager -o cat >"$work/journal.txt" 2>&1 || true
		port=$(wait_for_line "$work/journal.txt" 'listening on 127\.0\.0\.1:[0-9]+' 's/.*listening on 127\.0\.0\.1:([0-9]+).*/\1/' 1)
	} || { cat "$work/journal.txt"; die "$started_unit did not report its port"; }
	pid=$(systemctl show -p MainPID --value "$started_unit")
	echo "$started_unit: pid $pid, uid $(awk '/^Uid:/ { print $2 }' "/proc/$pid/status")," \
		"capabilities $(sed -n 's/^CapEff:[[:space:]]*//p' "/proc/$pid/status"), port $port"
	echo_roundtrip "$port" || die "echo through $started_unit"
	timeout 90 systemctl stop "$started_unit"
	started_unit=
	rm -f /etc/tcp-multiplexer/ci.conf
	echo "tcp-multiplexer@ci: started (Type=notify), answered, stopped"
else
	step "System V init script (no systemd running here)"
	/etc/init.d/tcp-multiplexer start 2>&1 | tee "$work/init.txt"
	grep -q 'Not starting' "$work/init.txt" || die "the init script started without a TARGET"
	restore_default=$work/default.orig
	cp /etc/default/tcp-multiplexer "$restore_default"
	port=$(free_port) || die "no free port"
	printf '%s\n' PROTOCOL=echo "TARGET=127.0.0.1:$sim_port" "LISTEN=127.0.0.1:$port" 'OPTIONS="--timeout 5s"' \
		>>/etc/default/tcp-multiplexer
	timeout 60 /etc/init.d/tcp-multiplexer start || die "/etc/init.d/tcp-multiplexer start"
	/etc/init.d/tcp-multiplexer status || die "/etc/init.d/tcp-multiplexer status"
	pid=$(cat /run/tcp-multiplexer.pid)
	[ "$(stat -c %U "/proc/$pid")" = _tcp-multiplexer ] ||
		die "the init script's daemon runs as $(stat -c %U "/proc/$pid"), not _tcp-multiplexer"
	echo "pid $pid runs as $(stat -c %U "/proc/$pid") with capabilities" \
		"$(sed -n 's/^CapEff:[[:space:]]*//p' "/proc/$pid/status") (0x400: CAP_NET_BIND_SERVICE only)"
	echo_roundtrip "$port" || die "echo through the init script's daemon"
	timeout 120 /etc/init.d/tcp-multiplexer stop || die "/etc/init.d/tcp-multiplexer stop"
	# Gone, or a zombie where PID 1 (a container's) does not reap orphans.
	state=$(sed -n 's/^State:[[:space:]]*//p' "/proc/$pid/status" 2>/dev/null || true)
	case $state in "" | Z*) ;; *) die "the daemon still runs after stop ($state)" ;; esac
	cp "$restore_default" /etc/default/tcp-multiplexer
	restore_default=
	echo "init script: skipped without TARGET; started, answered, stopped with one"
fi

step "systemd-analyze verify and security on the installed units"
man_check=--man=yes
command -v man >/dev/null 2>&1 || man_check=--man=no
for unit in tcp-multiplexer.service tcp-multiplexer@.service; do
	systemd-analyze verify "$man_check" "/lib/systemd/system/$unit" || die "systemd-analyze verify $unit"
	echo "verify $unit: ok"
	out=$(systemd-analyze security --offline=true --threshold=20 "/lib/systemd/system/$unit" 2>&1) || {
		echo "$out"
		die "systemd-analyze security: $unit is rated above 2.0"
	}
	grep 'Overall exposure level' <<<"$out"
done

step "packaging checks passed"
