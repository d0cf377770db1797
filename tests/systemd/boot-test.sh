#!/usr/bin/env bash
# Boots a minimal Debian 12 under systemd-nspawn, installs the package and
# checks the units under a real systemd (issue 17).
#   bash tests/systemd/boot-test.sh [PATH.deb]    (as root)
# Without a .deb it takes the newest ../tcp-multiplexer_*.deb or
# /tmp/ci-packaging.*/*.deb, or builds one with dpkg-buildpackage.
# The root is made once with debootstrap and cached in $TCPMUX_BOOT_CACHE
# (default /var/cache/tcp-multiplexer-boot-test); every run boots a fresh
# overlay on it. Exit 77 (skip) where debootstrap or systemd-nspawn cannot
# run here. Set BOOT_TEST_KEEP=1 to keep the run's directory for debugging.
set -euo pipefail
export LC_ALL=C.UTF-8
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
cache=${TCPMUX_BOOT_CACHE:-/var/cache/tcp-multiplexer-boot-test}
root=$cache/bookworm-minbase
# Packages the checks need inside: systemd as PID 1, mbpoll as the client,
# adduser for the package's system user.
include=systemd,systemd-sysv,dbus,mbpoll,adduser,procps,iproute2
started=$SECONDS

skip() { echo "boot-test: SKIP: $*" >&2; exit 77; }
die() { echo "boot-test: FAILED: $*" >&2; exit 1; }
step() { printf '\n=== %s (at %ss)\n' "$*" "$((SECONDS - started))"; }

# The first URIs:/deb line for Debian in the machine's apt sources.
apt_mirror()
{
	local m
	m=$(sed -n 's/^URIs:[[:space:]]*\([^[:space:]]*\/debian\)\/\{0,1\}$/\1/p' \
		/etc/apt/sources.list.d/*.sources 2>/dev/null | head -n1)
	[ -n "$m" ] || m=$(awk '$1 == "deb" && $2 !~ /^\[/ && $2 ~ /\/debian\/?$/ { print $2; exit }' \
		/etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null)
	echo "${m:-http://deb.debian.org/debian}"
}

# Makes the cached root once: built beside it and renamed when complete, so
# an interrupted run leaves no half root behind.
make_root()
{
	[ -x "$root/lib/systemd/systemd" ] && return 0
	command -v debootstrap >/dev/null || skip "debootstrap is not installed"
	mkdir -p "$cache"
	local tmp=$cache/.new.$$ mirror
	mirror=$(apt_mirror)
	step "debootstrap --variant=minbase bookworm from $mirror into $root (once)"
	rm -rf "$tmp"
	if ! timeout 1200 debootstrap --variant=minbase --include="$include" bookworm "$tmp" "$mirror" \
		>"$cache/debootstrap.log" 2>&1; then
		tail -n 20 "$cache/debootstrap.log" >&2
		rm -rf "$tmp"
		skip "debootstrap could not make a root here (log: $cache/debootstrap.log)"
	fi
	# No getty, no network setup: the container only runs what we ask of it.
	chroot "$tmp" systemctl mask console-getty.service getty@tty1.service \
		systemd-networkd-wait-online.service >/dev/null 2>&1 || true
	rm -f "$tmp/etc/machine-id" && : >"$tmp/etc/machine-id"
	apt-get clean -o RootDir="$tmp" 2>/dev/null || rm -f "$tmp"/var/cache/apt/archives/*.deb
	mv "$tmp" "$root"
}

[ "$(id -u)" = 0 ] || skip "needs root (debootstrap, systemd-nspawn)"
make_root
[ "${1:-}" = --make-root ] && exit 0

# ---- the run: a fresh overlay on the cached root, booted ------------------
# BOOT_TEST_FAULT=NAME breaks one thing on purpose, to show that the check
# meant to catch it fails (see README, Development): nocondition, noready, root,
# exposure, stopkill, restartbad, tightloop, partof, sysvroot, purgekeep,
# serialweak.
fault=${BOOT_TEST_FAULT:-}
case $fault in
"" | nocondition | noready | root | exposure | stopkill | restartbad | tightloop | partof | sysvroot | purgekeep | serialweak) ;;
*) die "unknown BOOT_TEST_FAULT=$fault" ;;
esac
command -v systemd-nspawn >/dev/null || skip "systemd-nspawn is not installed (Debian: systemd-container)"
command -v nsenter >/dev/null || skip "nsenter is not installed (util-linux)"

deb=${1:-}
run=$(mktemp -d /tmp/boot-test.XXXXXX)
merged=$run/root
nspawn_pid=
pid1=
overlay=
bg_pids=()
checks=0

cleanup()
{
	local p
	for p in "${bg_pids[@]}"; do
		kill "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	if [ -n "$nspawn_pid" ] && kill -0 "$nspawn_pid" 2>/dev/null; then
		# SIGTERM asks nspawn for an orderly shutdown of the container.
		kill -TERM "$nspawn_pid" 2>/dev/null || true
		for _ in $(seq 1 150); do kill -0 "$nspawn_pid" 2>/dev/null || break; sleep 0.2; done
		if kill -0 "$nspawn_pid" 2>/dev/null; then
			# Killing the container's PID 1 ends its whole pid namespace.
			[ -z "$pid1" ] || kill -KILL "$pid1" 2>/dev/null || true
			kill -KILL "$nspawn_pid" 2>/dev/null || true
		fi
		wait "$nspawn_pid" 2>/dev/null || true
	fi
	[ -z "$overlay" ] || umount "$merged" 2>/dev/null || umount -l "$merged" 2>/dev/null || true
	if [ -n "${BOOT_TEST_KEEP:-}" ]; then
		echo "boot-test: kept $run"
	else
		rm -rf "$run"
	fi
}
trap cleanup EXIT
trap "exit 1" INT TERM HUP PIPE

# Runs a command inside the container, with a clean environment and a bound.
inside() { timeout "${T:-60}" nsenter -t "$pid1" -a env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C.UTF-8 "$@"; }
# BOOT_TEST_KEEP_GOING=1 runs every check after a failure too (to see all
# that an old package breaks); by default the first failure ends the run.
failures=0
failed_here=
ok()
{
	checks=$((checks + 1))
	if [ -n "$failed_here" ]; then failed_here=; return 0; fi
	echo "ok $checks - $*"
}
not_ok()
{
	echo "not ok - $*" >&2
	if [ -n "${BOOT_TEST_KEEP_GOING:-}" ]; then
		failures=$((failures + 1))
		failed_here=1
		return 0
	fi
	echo "---- journal (last 60 lines)" >&2
	inside journalctl --no-pager -n 60 -o short-monotonic >&2 2>&1 || true
	die "$*"
}
show() { inside systemctl show -P "$2" "$1"; }
# Waits up to $1 seconds for the command after it to succeed.
until_ok()
{
	local deadline=$((SECONDS + $1))
	shift
	while ! "$@" >/dev/null 2>&1; do
		[ "$SECONDS" -lt "$deadline" ] || return 1
		sleep 0.2
	done
}
listening() { inside ss -Hltn "sport = :$1" | grep -q LISTEN; }
mb_read() { inside mbpoll -m tcp -a 1 -r 1 -c 2 -1 -o 5 -p "$1" 127.0.0.1; }

step "the package"
if [ -z "$deb" ]; then
	command -v dpkg-buildpackage >/dev/null || die "no .deb given and no dpkg-buildpackage to build one"
	git -C "$top" archive --format=tar --prefix=src/ HEAD | tar -x -C "$run"
	(cd "$run/src" && DEB_BUILD_OPTIONS="nocheck parallel=2" timeout 900 dpkg-buildpackage -us -uc -b) \
		>"$run/build.log" 2>&1 || { tail -n 40 "$run/build.log"; die "dpkg-buildpackage"; }
	deb=$(ls "$run"/tcp-multiplexer_*_*.deb)
fi
[ -f "$deb" ] || die "no package at $deb"
echo "package: $deb"
sim=$top/tests/sim-target
[ -x "$sim" ] || timeout 600 make -C "$top" tests/sim-target >"$run/sim-build.log" 2>&1 ||
	{ tail -n 20 "$run/sim-build.log"; die "make tests/sim-target"; }

step "a fresh overlay on $root, booted with systemd-nspawn"
mkdir -p "$run/upper" "$run/work" "$merged"
if mount -t overlay overlay -o "lowerdir=$root,upperdir=$run/upper,workdir=$run/work" "$merged" 2>/dev/null; then
	overlay=1
else
	echo "no overlayfs here: copying the root"
	cp -a "$root/." "$merged/"
fi
cp "$deb" "$merged/root/tcp-multiplexer.deb"
cp "$sim" "$merged/root/sim-target"
systemd-nspawn -q -D "$merged" -b --register=no --keep-unit --private-network \
	-M "tcpmux-boot-$$" >"$run/console.log" 2>&1 &
nspawn_pid=$!
for _ in $(seq 1 100); do
	pid1=$(cat "/proc/$nspawn_pid/task/$nspawn_pid/children" 2>/dev/null | awk '{ print $1 }')
	[ -n "$pid1" ] && [ "$(cat "/proc/$pid1/comm" 2>/dev/null)" = systemd ] && break
	pid1=
	kill -0 "$nspawn_pid" 2>/dev/null || break
	sleep 0.1
done
if [ -z "$pid1" ]; then
	tail -n 20 "$run/console.log" >&2
	skip "systemd-nspawn could not boot a container here"
fi
# Until systemd has its private socket up, systemctl cannot connect at all:
# it then prints nothing, or "offline" (seen in CI right after the boot).
state=
deadline=$((SECONDS + 90))
while { [ -z "$state" ] || [ "$state" = offline ]; } && [ "$SECONDS" -lt "$deadline" ] &&
	kill -0 "$nspawn_pid" 2>/dev/null; do
	state=$(T=90 inside systemctl is-system-running --wait 2>/dev/null || true)
	case $state in "" | offline) sleep 0.2 ;; esac
done
echo "container PID 1 is $pid1 on the host; system state: $state"
[ "$state" = running ] || { inside systemctl --failed --no-pager || true; skip "the container did not boot (state: $state)"; }
boot_at=$SECONDS

step "dpkg -i"
inside dpkg -i /root/tcp-multiplexer.deb >"$run/dpkg.log" 2>&1 || { cat "$run/dpkg.log"; not_ok "dpkg -i"; }
inside systemctl daemon-reload

# A drop-in for unit $1 (file $2 below /etc/systemd/system/$1.d) from stdin.
dropin() { inside mkdir -p "/etc/systemd/system/$1.d" && inside tee "/etc/systemd/system/$1.d/$2" >/dev/null; }
# An instance configuration /etc/tcp-multiplexer/$1.conf.
conf()
{
	inside tee "/etc/tcp-multiplexer/$1.conf" >/dev/null <<-CONF
	PROTOCOL=modbus
	TARGET=127.0.0.1:$2
	LISTEN=$3
	OPTIONS="$4"
	CONF
}
# A simulated Modbus target as a transient service, line-buffered output.
sim_start()
{
	inside systemd-run -q --unit="$1" -p Type=exec -p StandardOutput="file:/run/$1.out" \
		/usr/bin/stdbuf -oL /root/sim-target -p modbus -P "$2" "${@:3}"
	until_ok 10 listening "$2" || not_ok "the simulated target $1 does not listen on $2"
}
# Exposure of unit $1 as systemd-analyze security rates it, e.g. "1.4".
exposure() { inside systemd-analyze security --no-pager "$1" | sed -n 's/.*Overall exposure level for .*: \([0-9.]*\).*/\1/p'; }
at_most() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a <= b) }'; }

step "tcp-multiplexer.service without a TARGET"
if [ "$fault" = nocondition ]; then # started without its ExecCondition=
	printf '[Service]\nExecCondition=\n' | dropin tcp-multiplexer.service fault.conf
	inside systemctl daemon-reload
	inside systemctl restart tcp-multiplexer.service 2>/dev/null || true
fi
active=$(show tcp-multiplexer.service ActiveState)
result=$(show tcp-multiplexer.service Result)
# Result=exec-condition is systemd's word for "skipped by ExecCondition=".
case $result in success | exec-condition) ;; *) result_bad=1 ;; esac
[ "$active" = inactive ] && [ -z "${result_bad:-}" ] && ! inside systemctl -q is-failed tcp-multiplexer.service ||
	not_ok "tcp-multiplexer.service without TARGET: $active, result $result (want inactive, skipped)"
ok "tcp-multiplexer.service without TARGET: inactive, Result=$result, not failed (enabled: $(inside systemctl is-enabled tcp-multiplexer.service))"

step "an instance against a simulated Modbus target on port 502"
sim_start sim-fast 1502
conf plc 1502 502 "-v --timeout 5s"
case $fault in
noready) # never sends READY=1: the start must time out, not succeed
	dropin tcp-multiplexer@plc.service fault.conf <<-'D'
	[Service]
	TimeoutStartSec=5s
	ExecStart=
	ExecStart=/usr/bin/env -u NOTIFY_SOCKET /usr/sbin/tcp-multiplexer server --protocol=${PROTOCOL} --target=${TARGET} --listen=${LISTEN} $OPTIONS
	D
	;;
root) printf '[Service]\nDynamicUser=no\n' | dropin tcp-multiplexer@plc.service fault.conf ;;
exposure) printf '[Service]\nProtectSystem=no\nProtectHome=no\nPrivateTmp=no\nSystemCallFilter=\nRestrictAddressFamilies=\n' |
	dropin tcp-multiplexer@plc.service fault.conf ;;
stopkill) printf '[Service]\nKillSignal=SIGKILL\n' | dropin tcp-multiplexer@slow.service fault.conf ;;
restartbad) printf '[Service]\nRestartPreventExitStatus=\n' | dropin tcp-multiplexer@bad.service fault.conf ;;
tightloop) printf '[Service]\nRestartSec=100ms\n' | dropin tcp-multiplexer@busy.service fault.conf ;;
partof) printf '[Unit]\nPartOf=tcp-multiplexer@plc.service\n' | dropin tcp-multiplexer@plc2.service fault.conf ;;
esac
inside systemctl daemon-reload
T=30 inside systemctl start tcp-multiplexer@plc.service || not_ok "systemctl start tcp-multiplexer@plc did not succeed"
# Type=notify: start returned once READY=1 came, so the port is open now,
# without any waiting.
[ "$(show tcp-multiplexer@plc.service Type)" = notify ] || not_ok "tcp-multiplexer@plc is not Type=notify"
listening 502 || not_ok "tcp-multiplexer@plc is active but does not listen on 502 yet"
ok "tcp-multiplexer@plc: Type=notify, active once listening on 502"
pid=$(show tcp-multiplexer@plc.service MainPID)
uid=$(inside awk '/^Uid:/ { print $2 }' "/proc/$pid/status")
user=$(inside ps -o user= -p "$pid")
caps=$(inside sed -n 's/^CapEff:[[:space:]]*//p' "/proc/$pid/status")
[ "$uid" != 0 ] && [ "$(show tcp-multiplexer@plc.service DynamicUser)" = yes ] ||
	not_ok "tcp-multiplexer@plc runs as uid $uid ($user), not as a dynamic user"
ok "tcp-multiplexer@plc runs as the dynamic user $user (uid $uid), capabilities $caps"
out=$(mb_read 502) || { echo "$out"; not_ok "mbpoll through tcp-multiplexer@plc on port 502"; }
grep -q '^\[1\]:' <<<"$out" || { echo "$out"; not_ok "mbpoll read no register through port 502"; }
ok "mbpoll reads registers 1-2 through port 502: $(grep '^\[' <<<"$out" | tr -s '\t\n' '  ')"
e=$(exposure tcp-multiplexer@plc.service)
[ -n "$e" ] && at_most "$e" 2.0 || not_ok "systemd-analyze security rates tcp-multiplexer@plc at '$e', above 2.0"
ok "systemd-analyze security: tcp-multiplexer@plc exposure $e (at most 2.0)"

step "systemctl stop with a request in flight"
sim_start sim-slow 1503 -d 2000
conf slow 1503 503 "-v --timeout 5s"
inside systemctl start tcp-multiplexer@slow.service || not_ok "systemctl start tcp-multiplexer@slow"
inside mbpoll -m tcp -a 1 -r 1 -c 1 -1 -o 8 -p 503 127.0.0.1 >"$run/inflight.out" 2>&1 &
client=$!
bg_pids+=("$client")
# In flight once the target has it (its counters, on SIGUSR1).
in_flight() { inside systemctl kill -s USR1 --kill-whom=main sim-slow.service && inside grep -q '^requests [1-9]' /run/sim-slow.out; }
until_ok 10 in_flight || not_ok "the request never reached the slow target"
t0=$SECONDS
T=30 inside systemctl stop tcp-multiplexer@slow.service || not_ok "systemctl stop tcp-multiplexer@slow"
rc=0
wait "$client" || rc=$?
result=$(show tcp-multiplexer@slow.service Result)
[ "$rc" = 0 ] && grep -q '^\[1\]:' "$run/inflight.out" ||
	{ cat "$run/inflight.out"; not_ok "the request in flight did not get its answer across the stop (mbpoll status $rc)"; }
[ "$result" = success ] || not_ok "tcp-multiplexer@slow stopped with Result=$result, not success"
ok "stop with a request in flight: answered, Result=success, stop took $((SECONDS - t0)) s"

step "a bad option and a port in use"
conf bad 1502 505 "--no-such-option"
conf busy 1502 502 "-v"
inside systemctl start tcp-multiplexer@bad.service tcp-multiplexer@busy.service 2>/dev/null || true
t0=$SECONDS
# A measuring window, not a wait for an event: with RestartSec=5s a loop
# that backs off restarts at most 3 times in 12 s; a tight one would have
# hit the start limit (5 starts in 10 s) and failed.
sleep 12
active=$(show tcp-multiplexer@bad.service ActiveState)
restarts=$(show tcp-multiplexer@bad.service NRestarts)
status=$(show tcp-multiplexer@bad.service ExecMainStatus)
[ "$active" = failed ] && [ "$restarts" = 0 ] && [ "$status" = 2 ] ||
	not_ok "tcp-multiplexer@bad: $active after $restarts restarts, status $status (want failed, 0, 2)"
why=$(inside journalctl --no-pager -o cat -p err -u tcp-multiplexer@bad.service)
grep -q 'no-such-option' <<<"$why" || { echo "$why"; not_ok "journalctl -p err does not say why tcp-multiplexer@bad failed"; }
ok "a bad option: failed with status 2, no restart; journalctl -p err: $(head -n1 <<<"$why")"
restarts=$(show tcp-multiplexer@busy.service NRestarts)
active=$(show tcp-multiplexer@busy.service ActiveState)
[ "$restarts" -ge 1 ] && [ "$restarts" -le 3 ] && [ "$active" != failed ] ||
	not_ok "port in use: $restarts restarts in $((SECONDS - t0)) s, state $active (want 1-3, still retrying)"
why=$(inside journalctl --no-pager -o cat -p err -u tcp-multiplexer@busy.service | head -n1)
grep -q 'cannot listen' <<<"$why" || not_ok "journalctl -p err does not say why tcp-multiplexer@busy failed"
ok "port in use: $restarts restarts in $((SECONDS - t0)) s (RestartSec backoff), still retrying; journalctl -p err: $why"
inside systemctl stop tcp-multiplexer@busy.service
inside systemctl reset-failed tcp-multiplexer@bad.service tcp-multiplexer@busy.service 2>/dev/null || true

step "journald priorities of a routine stop"
# The plc instance is stopped later; slow's stop above is in the journal.
log=$(inside journalctl --no-pager -o cat -u tcp-multiplexer@slow.service)
above=$(inside journalctl --no-pager -o cat -p warning -u tcp-multiplexer@slow.service | grep -i 'stop' || true)
[ -z "$above" ] || { echo "$above"; not_ok "a routine stop logged at warning or above"; }
notice=$(inside journalctl --no-pager -o cat -p notice -u tcp-multiplexer@slow.service | grep -c 'stopp' || true)
[ "$notice" -ge 2 ] || { echo "$log"; not_ok "the stop lines are not at notice"; }
words=$(grep -E '^(error|warn|notice|info|debug): ' <<<"$log" || true)
[ -z "$words" ] || { echo "$words"; not_ok "journal lines repeat their level in words"; }
ok "journald: stop lines at notice (none at warning or above), usage error at err, no level words"

step "systemctl restart of one instance leaves a second serving"
conf plc2 1502 504 "-v --timeout 5s"
inside systemctl start tcp-multiplexer@plc2.service || not_ok "systemctl start tcp-multiplexer@plc2"
pid2=$(show tcp-multiplexer@plc2.service MainPID)
# A client polls plc2 until told to stop (a flag file), counting failures.
inside rm -f /run/poll.stop
inside bash -c 'ok=0; bad=0; for i in $(seq 1 600); do
	if mbpoll -m tcp -a 1 -r 1 -c 1 -1 -o 2 -p 504 127.0.0.1 >/dev/null 2>&1; then ok=$((ok + 1)); else bad=$((bad + 1)); fi
	echo "$ok $bad" >/run/poll.count; [ -e /run/poll.stop ] && break; sleep 0.05; done' &
poller=$!
bg_pids+=("$poller")
polled() { inside awk '$1 >= 3 { ok = 1 } END { exit !ok }' /run/poll.count; }
until_ok 20 polled || not_ok "the client of plc2 got no answers"
T=30 inside systemctl restart tcp-multiplexer@plc.service || not_ok "systemctl restart tcp-multiplexer@plc"
mb_read 502 >/dev/null || not_ok "tcp-multiplexer@plc does not serve after its restart"
before=$(inside cat /run/poll.count)
until_ok 20 inside awk -v n="${before%% *}" '$1 >= n + 3 { ok = 1 } END { exit !ok }' /run/poll.count ||
	not_ok "the client of plc2 stalled after plc's restart"
inside touch /run/poll.stop
wait "$poller" || true
read -r served failed < <(inside cat /run/poll.count)
[ "$failed" = 0 ] && [ "$(show tcp-multiplexer@plc2.service MainPID)" = "$pid2" ] ||
	not_ok "plc2 during plc's restart: $failed of $((served + failed)) requests failed, pid $pid2 -> $(show tcp-multiplexer@plc2.service MainPID)"
ok "restart of plc: plc2 served all $served requests meanwhile, same pid $pid2"

step "the serial-port drop-in"
# The daemon's serial support comes separately: the instance runs against
# the TCP target, which is enough to rate and inspect its sandbox.
conf meter 1502 506 "-v"
inside mkdir -p /etc/systemd/system/tcp-multiplexer@meter.service.d
inside cp /usr/share/doc/tcp-multiplexer/examples/serial-port.conf /etc/systemd/system/tcp-multiplexer@meter.service.d/ ||
	not_ok "the package has no examples/serial-port.conf"
[ "$fault" != serialweak ] ||
	printf '[Service]\nSystemCallFilter=\nRestrictAddressFamilies=\n' | dropin tcp-multiplexer@meter.service fault.conf
inside systemctl daemon-reload
inside systemctl start tcp-multiplexer@meter.service || not_ok "systemctl start tcp-multiplexer@meter"
mpid=$(show tcp-multiplexer@meter.service MainPID)
groups=$(inside sed -n 's/^Groups:[[:space:]]*//p' "/proc/$mpid/status")
dialout=$(inside getent group dialout | cut -d: -f3)
grep -qw "$dialout" <<<"$groups" || not_ok "tcp-multiplexer@meter is not in group dialout ($dialout): groups $groups"
allow=$(show tcp-multiplexer@meter.service DeviceAllow | paste -sd, -)
grep -q 'char-ttyUSB rw' <<<"$allow" || not_ok "tcp-multiplexer@meter: DeviceAllow=$allow"
[ "$(show tcp-multiplexer@plc.service PrivateDevices)" = yes ] || not_ok "the drop-in weakened tcp-multiplexer@plc"
em=$(exposure tcp-multiplexer@meter.service)
ep=$(exposure tcp-multiplexer@plc.service)
[ -n "$em" ] && at_most "$em" 2.5 || not_ok "systemd-analyze security rates tcp-multiplexer@meter at '$em', above 2.5"
[ "$ep" = "$e" ] || not_ok "tcp-multiplexer@plc's exposure changed from $e to $ep"
ok "serial drop-in: meter in dialout, DeviceAllow=$allow, exposure $em (at most 2.5); plc still $ep with PrivateDevices=yes"
inside systemctl stop tcp-multiplexer@meter.service

step "the System V init script, run directly"
inside tee -a /etc/default/tcp-multiplexer >/dev/null <<-'D'
PROTOCOL=modbus
TARGET=127.0.0.1:1502
LISTEN=5020
D
[ "$fault" != sysvroot ] || inside sed -i 's/^RUN_USER=.*/RUN_USER=root/; s/^RUN_GROUP=.*/RUN_GROUP=root/' /etc/init.d/tcp-multiplexer
# Without this, init-functions hands the script over to systemctl.
sysv() { inside env SYSTEMCTL_SKIP_REDIRECT=1 /etc/init.d/tcp-multiplexer "$@"; }
sysv start >"$run/sysv.out" 2>&1 || { cat "$run/sysv.out"; not_ok "/etc/init.d/tcp-multiplexer start"; }
spid=$(inside cat /run/tcp-multiplexer.pid) || { cat "$run/sysv.out"; not_ok "the init script wrote no pid file"; }
suser=$(inside ps -o user= -p "$spid")
[ "$suser" = _tcp-multiplexer ] || not_ok "the init script's daemon runs as '$suser', not _tcp-multiplexer"
sysv status >"$run/sysv.out" 2>&1 || { cat "$run/sysv.out"; not_ok "/etc/init.d/tcp-multiplexer status"; }
mb_read 5020 >/dev/null || not_ok "mbpoll through the init script's daemon"
sysv stop >"$run/sysv.out" 2>&1 || { cat "$run/sysv.out"; not_ok "/etc/init.d/tcp-multiplexer stop"; }
state=$(inside sed -n 's/^State:[[:space:]]*//p' "/proc/$spid/status" 2>/dev/null || true)
case $state in "" | Z*) ;; *) not_ok "the init script's daemon still runs after stop ($state)" ;; esac
ok "System V script: started as $suser (pid $spid), status ok, served mbpoll on 5020, stopped"
# A failed start says why: the daemon logs to syslog, its start-up errors
# also reach stderr, which the script keeps and prints.
inside sed -i 's/^LISTEN=5020$/LISTEN=504/' /etc/default/tcp-multiplexer
rc=0
sysv start >"$run/sysv.out" 2>&1 || rc=$?
[ "$rc" != 0 ] && grep -q 'cannot listen on 504' "$run/sysv.out" ||
	{ cat "$run/sysv.out"; not_ok "the init script's failed start (port 504 taken) did not say why (status $rc)"; }
ok "System V script: a taken port fails the start (status $rc) and says: $(grep -m1 'cannot listen' "$run/sysv.out")"
inside sed -i '/^PROTOCOL=modbus$/d; /^TARGET=127.0.0.1:1502$/d; /^LISTEN=504$/d' /etc/default/tcp-multiplexer

step "dpkg --purge with instances running and enabled"
inside systemctl enable tcp-multiplexer@plc.service 2>/dev/null
inside test -L /etc/systemd/system/multi-user.target.wants/tcp-multiplexer@plc.service ||
	not_ok "systemctl enable made no link for tcp-multiplexer@plc"
[ "$fault" != purgekeep ] || inside sh -c 'printf "#!/bin/sh\nexit 0\n" >/var/lib/dpkg/info/tcp-multiplexer.postrm'
T=120 inside dpkg --purge tcp-multiplexer >"$run/purge.log" 2>&1 || { cat "$run/purge.log"; not_ok "dpkg --purge"; }
left=$(inside ps -eo pid=,comm= | awk '$2 == "tcp-multiplexer"' || true)
[ -z "$left" ] || not_ok "daemons still running after purge: $left"
left=$(inside find /etc/systemd /lib/systemd/system /usr/lib/systemd/system /run/systemd/system /etc/init.d \
	/etc/default /etc/tcp-multiplexer \( -name '*tcp-multiplexer*' -o -name example.conf \) 2>/dev/null |
	grep -v -e '\.service\.d' -e '^/etc/tcp-multiplexer$' || true)
[ -z "$left" ] || not_ok "left after purge: $left"
! inside getent passwd _tcp-multiplexer >/dev/null || not_ok "the user _tcp-multiplexer is left after purge"
! inside getent group _tcp-multiplexer >/dev/null || not_ok "the group _tcp-multiplexer is left after purge"
units=$(inside systemctl list-units --no-legend --all 'tcp-multiplexer*' | grep -v 'not-found.*inactive' || true)
[ -z "$units" ] || not_ok "units still loaded after purge: $units"
# What stays is the administrator's: the instances' NAME.conf files and
# the drop-in directories made by hand, as dpkg leaves files it did not ship.
kept=$(inside find /etc/tcp-multiplexer /etc/systemd/system -name '*.conf' -path '*tcp-multiplexer*' 2>/dev/null | paste -sd' ' -)
ok "dpkg --purge: every instance stopped, no unit, link, user or group left (kept the administrator's: $kept)"

[ "$failures" = 0 ] || die "$failures checks failed"
step "passed: $checks checks in $((SECONDS - started)) s ($((SECONDS - boot_at)) s after the boot)"
