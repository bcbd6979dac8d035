#!/usr/bin/env bash
# A real systemd in a container, for rollbackd's integration tests.
#
#   container.sh prepare              debootstrap a minimal Debian bookworm root (systemd, dbus, python3, curl,
#                                     procps) into $ROLLBACKD_TEST_CACHE/root, or reuse it when present and valid
#   container.sh boot NAME            boot a copy-on-write copy of that root with `systemd-nspawn -b`, loopback-only
#                                     network; returns once PID 1 inside says running (or degraded)
#   container.sh exec NAME CMD...     run CMD inside (nsenter into the container's PID 1 namespaces)
#   container.sh install NAME [CONFIG]
#                                     `make install-files` into the container's root (binary, units, sysusers,
#                                     catalog, config; CONFIG replaces the shipped thresholds.json), then the
#                                     post-install steps inside (user, config group, catalog, daemon-reload)
#   container.sh deb NAME FIRST.deb SECOND.deb
#                                     the Debian package's life in a booted systemd: dpkg -i starts and enables
#                                     nothing; the operator's table, then rollbackd.service is READY; dpkg -i of
#                                     the second build keeps the table and restarts the watchdog; dpkg --purge
#                                     removes the state and the config, keeps the user
#   container.sh stop NAME            clean poweroff, then SIGTERM/SIGKILL, then remove the copy
#   container.sh probe-daemon-sandbox NAME
#                                     runs the installed binary (`rollbackd check`) under rollbackd.service's own
#                                     hardening (a runtime drop-in makes it a oneshot), then removes the drop-in
#   container.sh probe-exec-sandbox NAME
#                                     runs a stand-in for `rollbackd execute` under rollbackd-exec@.service's
#                                     hardening: the shipped strategy's steps must work, everything else must not
#   container.sh scenario-NAME ...    the daemon scenarios of issue 6 (see the end of this file)
#
# Every failure says why on stderr and exits non-zero. Nothing is skipped silently.
#
# Environment:
#   ROLLBACKD_TEST_CACHE   where the prepared root and the machine copies live (/var/cache/rollbackd-test)
#   ROLLBACKD_TEST_MIRROR  Debian mirror for debootstrap (http://deb.debian.org/debian)
#   ROLLBACKD_BIN          the rollbackd binary to install (default: the debug build, .build/debug/rollbackd;
#                          the release build works the same). The toolchain's runtime directory is bind-mounted
#                          read-only into every container at the same path, so a debug build (which links the
#                          Swift runtime dynamically) runs there as is.
#   ROLLBACKD_BOOT_TIMEOUT seconds to wait for the container's systemd (60)
set -euo pipefail

SELF=$(readlink -f "$0")
REPO=$(cd "$(dirname "$SELF")/../.." && pwd)
CACHE=${ROLLBACKD_TEST_CACHE:-/var/cache/rollbackd-test}
ROOT=$CACHE/root
MACHINES=$CACHE/machines
MIRROR=${ROLLBACKD_TEST_MIRROR:-http://deb.debian.org/debian}
SUITE=bookworm
# What the root must hold. Changing this list makes `prepare` build a new root (the stamp records it).
INCLUDE=systemd,systemd-sysv,dbus,python3,curl,ca-certificates,procps,util-linux
STAMP_FILE=.rollbackd-test-root
STAMP="suite=$SUITE include=$INCLUDE recipe=2"
BOOT_TIMEOUT=${ROLLBACKD_BOOT_TIMEOUT:-60}
SWIFT_RUNTIME=${ROLLBACKD_SWIFT_RUNTIME:-}
CONTAINER_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

die() { echo "container.sh: $*" >&2; exit 1; }
log() { echo "container.sh: $*" >&2; }

# ---------------------------------------------------------------------------------------------------------------
# Host tools

need_host_tools() {
    local missing=()
    command -v debootstrap >/dev/null || missing+=(debootstrap)
    command -v systemd-nspawn >/dev/null || missing+=(systemd-container)
    command -v nsenter >/dev/null || missing+=(util-linux)
    [ ${#missing[@]} -eq 0 ] && return 0
    log "installing ${missing[*]} from Debian's packages"
    # Another test may be installing at the same moment: wait for dpkg's lock instead of failing.
    apt-get -o DPkg::Lock::Timeout=300 update -qq ||
        die "apt-get update failed; cannot install ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null || die "apt-get install ${missing[*]} failed"
}

need_root() { [ "$(id -u)" = 0 ] || die "must run as root (debootstrap, systemd-nspawn and nsenter need it)"; }

valid_name() {
    [[ "${1:-}" =~ ^[A-Za-z0-9][A-Za-z0-9-]{0,40}$ ]] || die "bad container name '${1:-}' (letters, digits, -)"
}

# ---------------------------------------------------------------------------------------------------------------
# prepare

root_is_valid() {
    [ -f "$ROOT/$STAMP_FILE" ] && [ "$(cat "$ROOT/$STAMP_FILE")" = "$STAMP" ] &&
        [ -x "$ROOT/usr/lib/systemd/systemd" ] && [ -x "$ROOT/usr/bin/python3" ] && [ -x "$ROOT/usr/bin/curl" ] &&
        [ -x "$ROOT/usr/bin/ps" ] && [ -x "$ROOT/usr/bin/kill" ] && [ -x "$ROOT/usr/bin/setpriv" ] &&
        [ -x "$ROOT/usr/bin/dbus-daemon" ]
}

cmd_prepare() {
    need_root
    mkdir -p "$CACHE" "$MACHINES"
    # One preparer at a time; the others wait and then find the root ready.
    exec 9>"$CACHE/prepare.lock"
    flock -w 900 9 || die "timed out waiting for another prepare (lock $CACHE/prepare.lock)"
    remove_stale_machines
    if root_is_valid; then
        need_host_tools
        echo "$ROOT"
        return 0
    fi
    need_host_tools
    local new=$CACHE/root.new started=$SECONDS
    rm -rf "$new"
    log "debootstrap $SUITE ($INCLUDE) from $MIRROR into $new"
    if ! debootstrap --variant=minbase --include="$INCLUDE" "$SUITE" "$new" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1; then
        tail -n 20 "$CACHE/debootstrap.log" >&2
        die "debootstrap failed (full log: $CACHE/debootstrap.log)"
    fi
    # A container for tests: no timers that wake up apt, no console login, a fixed hostname, first boot done.
    systemctl --root="$new" mask apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer \
        dpkg-db-backup.timer fstrim.timer console-getty.service getty@tty1.service >/dev/null 2>&1 || true
    echo rollbackd-test >"$new/etc/hostname"
    : >"$new/etc/machine-id"
    rm -rf "$new/var/cache/apt/archives/"*.deb "$new/var/lib/apt/lists/"*
    echo "$STAMP" >"$new/$STAMP_FILE"
    rm -rf "$ROOT"
    mv "$new" "$ROOT"
    root_is_valid || die "the new root at $ROOT is incomplete (see $CACHE/debootstrap.log)"
    log "prepared $ROOT in $((SECONDS - started))s"
    echo "$ROOT"
}

# ---------------------------------------------------------------------------------------------------------------
# boot / exec / stop

state_file() { echo "$MACHINES/$1.state"; }

# True while PID is our systemd-nspawn (or the setsid about to become it); a recorded pid that was reused by
# something else is left alone.
is_nspawn() {
    [ -n "$1" ] || return 1
    case "$(cat "/proc/$1/comm" 2>/dev/null)" in systemd-nspawn | setsid) return 0 ;; *) return 1 ;; esac
}

# starting_or_nspawn PID: systemd-nspawn, or our own child a moment before it runs it: right after `&` the child is
# a fork of this script (same comm) until it execs setsid, and a loaded runner can look in that moment.
starting_or_nspawn() {
    is_nspawn "$1" && return 0
    [ -n "$1" ] && [ "$(cat "/proc/$1/comm" 2>/dev/null)" = "$(cat /proc/$$/comm)" ]
}

# wait_gone PID STEPS: waits up to STEPS × 0.2 s for PID to stop being systemd-nspawn.
wait_gone() {
    local n=0
    while is_nspawn "$1"; do
        [ $n -ge "$2" ] && return 1
        n=$((n + 1))
        sleep 0.2
    done
}

# Copies left by a test that died before `stop` (their systemd-nspawn is gone): unmount and remove them.
remove_stale_machines() {
    local f name pid
    for f in "$MACHINES"/*.state; do
        [ -f "$f" ] || continue
        name=$(basename "$f" .state)
        pid=$(sed -n 's/^NSPAWN_PID=//p' "$f")
        if ! is_nspawn "$pid"; then
            log "removing the stale container $name"
            cmd_stop "$name" || true
        fi
    done
}

# Loads MODE, DIR, NSPAWN_PID, LEADER, LOG of a booted container.
load_state() {
    local f
    f=$(state_file "$1")
    [ -f "$f" ] || die "container $1 is not booted (no $f)"
    # shellcheck disable=SC1090
    . "$f"
}

# The container's PID 1 as seen from the host: a descendant of systemd-nspawn whose innermost pid is 1.
find_leader() {
    local nspawn=$1 p c
    for p in $(pgrep -P "$nspawn" 2>/dev/null) ; do
        for c in "$p" $(pgrep -P "$p" 2>/dev/null); do
            if [ "$(awk '/^NSpid:/ { print $NF }' "/proc/$c/status" 2>/dev/null)" = 1 ]; then
                echo "$c"
                return 0
            fi
        done
    done
    return 1
}

swift_runtime_dir() {
    if [ -n "$SWIFT_RUNTIME" ]; then echo "$SWIFT_RUNTIME"; return; fi
    local swiftc dir
    if swiftc=$(command -v swiftc 2>/dev/null) &&
        dir=$(cd "$(dirname "$(readlink -f "$swiftc")")/../lib/swift/linux" 2>/dev/null && pwd) &&
        [ -f "$dir/libswiftCore.so" ]; then
        echo "$dir"
    elif [ -f /opt/swift/usr/lib/swift/linux/libswiftCore.so ]; then
        echo /opt/swift/usr/lib/swift/linux
    fi
}

cmd_boot() {
    need_root
    local name=${1:-}
    valid_name "$name"
    root_is_valid || die "no prepared root at $ROOT: run '$0 prepare' first"
    command -v systemd-nspawn >/dev/null || die "systemd-nspawn is missing: run '$0 prepare' first"
    [ -f "$(state_file "$name")" ] && die "container $name is already booted (stop it first)"
    local dir=$MACHINES/$name mode log=$MACHINES/$name.log
    rm -rf "$dir"
    mkdir -p "$dir/upper" "$dir/work" "$dir/root"
    # Copy-on-write: an overlay over the cached root; a full copy when overlayfs is not available.
    if mount -t overlay "rollbackd-test-$name" \
        -o "lowerdir=$ROOT,upperdir=$dir/upper,workdir=$dir/work" "$dir/root" 2>/dev/null; then
        mode=overlay
    else
        log "overlayfs unavailable; copying the root (slower)"
        cp -a --reflink=auto "$ROOT/." "$dir/root/"
        mode=copy
    fi
    local binds=()
    local rt
    rt=$(swift_runtime_dir)
    [ -n "$rt" ] && binds+=("--bind-ro=$rt")
    # Its own session: the test that ran `boot` may end its process group; the container must outlive it until
    # `stop`. Output goes to a log, so no pipe of the caller stays open.
    setsid systemd-nspawn --quiet --boot --register=no --keep-unit --private-network \
        --machine="$name" --directory="$dir/root" --console=read-only "${binds[@]}" \
        </dev/null >"$log" 2>&1 &
    local nspawn=$!
    cat >"$(state_file "$name")" <<EOF
MODE=$mode
DIR=$dir
NSPAWN_PID=$nspawn
LEADER=
LOG=$log
EOF
    local deadline=$((SECONDS + BOOT_TIMEOUT)) leader="" state=""
    while [ $SECONDS -lt $deadline ]; do
        if ! starting_or_nspawn "$nspawn"; then
            tail -n 30 "$log" >&2
            local last
            last=$(tail -n 5 "$log" 2>/dev/null | tr '\n' ' ')
            cmd_stop "$name" >/dev/null 2>&1 || true
            die "container $name did not start: systemd-nspawn exited (comm '$(cat "/proc/$nspawn/comm" 2>/dev/null)'); its log ends: $last"
        fi
        if [ -z "$leader" ]; then
            leader=$(find_leader "$nspawn" || true)
            [ -n "$leader" ] && sed -i "s/^LEADER=.*/LEADER=$leader/" "$(state_file "$name")"
        fi
        if [ -n "$leader" ]; then
            state=$(nsenter -t "$leader" -a env -i PATH=$CONTAINER_PATH systemctl is-system-running 2>/dev/null || true)
            case "$state" in
                running) echo "$name"; return 0 ;;
                degraded)
                    log "container $name is degraded; failed units:"
                    nsenter -t "$leader" -a env -i PATH=$CONTAINER_PATH systemctl --failed --no-legend >&2 || true
                    echo "$name"
                    return 0 ;;
            esac
        fi
        sleep 0.2
    done
    tail -n 30 "$log" >&2
    if [ -n "$leader" ]; then
        nsenter -t "$leader" -a env -i PATH=$CONTAINER_PATH systemctl list-jobs --no-pager >&2 || true
    fi
    cmd_stop "$name" >/dev/null 2>&1 || true
    die "container $name did not reach running within ${BOOT_TIMEOUT}s (last state: '${state:-no PID 1 found}')"
}

cmd_exec() {
    need_root
    local name=${1:-}
    valid_name "$name"
    shift
    [ $# -gt 0 ] || die "exec $name: no command"
    load_state "$name"
    if [ -z "$LEADER" ] || [ ! -d "/proc/$LEADER" ]; then die "container $name is not running (no PID 1)"; fi
    exec nsenter -t "$LEADER" -a env -i PATH=$CONTAINER_PATH LANG=C.UTF-8 SYSTEMD_PAGER= SYSTEMD_COLORS=0 "$@"
}

# Runs a command inside without replacing this shell (for the subcommands below).
in_container() {
    local name=$1
    shift
    load_state "$name"
    nsenter -t "$LEADER" -a env -i PATH=$CONTAINER_PATH LANG=C.UTF-8 SYSTEMD_PAGER= SYSTEMD_COLORS=0 "$@"
}

cmd_stop() {
    need_root
    local name=${1:-}
    valid_name "$name"
    local f
    f=$(state_file "$name")
    [ -f "$f" ] || return 0
    load_state "$name"
    if is_nspawn "$NSPAWN_PID"; then
        if [ -n "$LEADER" ] && [ -d "/proc/$LEADER" ]; then
            nsenter -t "$LEADER" -a env -i PATH=$CONTAINER_PATH systemctl poweroff --no-block >/dev/null 2>&1 || true
        fi
        if ! wait_gone "$NSPAWN_PID" 100; then
            log "container $name did not power off within 20s; SIGTERM"
            kill -TERM "$NSPAWN_PID" 2>/dev/null || true
        fi
        if ! wait_gone "$NSPAWN_PID" 25; then
            log "container $name still there; SIGKILL"
            # Killing PID 1 of the container's pid namespace kills every process in it.
            if [ -n "$LEADER" ]; then kill -KILL "$LEADER" 2>/dev/null || true; fi
            kill -KILL "$NSPAWN_PID" 2>/dev/null || true
            wait_gone "$NSPAWN_PID" 25 || die "cannot kill systemd-nspawn (pid $NSPAWN_PID) of container $name"
        fi
    fi
    if mountpoint -q "$DIR/root"; then
        umount -R "$DIR/root" 2>/dev/null || umount -l "$DIR/root" || die "cannot unmount $DIR/root"
    fi
    rm -rf "$DIR" "/run/systemd/nspawn/propagate/$name"
    rm -f "$f" "$LOG"
}

# ---------------------------------------------------------------------------------------------------------------
# install

cmd_install() {
    need_root
    local name=${1:-} config=${2:-}
    valid_name "$name"
    load_state "$name"
    local bin=${ROLLBACKD_BIN:-$REPO/.build/debug/rollbackd}
    [ -x "$bin" ] || die "no rollbackd binary at $bin: build it first (swift build) or set ROLLBACKD_BIN"
    [ -z "$config" ] || [ -f "$config" ] || die "no config file $config"
    # The same file list, modes and paths as `make install`, into the container's root.
    make -s -C "$REPO" --no-print-directory install-files DESTDIR="$DIR/root" INSTALL_BIN="$bin" >&2 ||
        die "make install-files DESTDIR=$DIR/root failed"
    if [ -n "$config" ]; then
        install -m 0640 "$config" "$DIR/root/etc/rollbackd/thresholds.json"
    fi
    # And the same post-install steps as `make install` on a live system, run inside.
    in_container "$name" sh -s -- /usr/local/lib/sysusers.d/rollbackd.conf /etc/rollbackd/thresholds.json \
        <"$REPO/systemd/post-install.sh" >&2 || die "post-install inside $name failed"
}

# ---------------------------------------------------------------------------------------------------------------
# The Debian package (make deb), installed, upgraded and purged as an administrator would.

cmd_deb() {
    need_root
    local name=${1:-} first=${2:-} second=${3:-}
    valid_name "$name"
    load_state "$name"
    [ -f "$first" ] && [ -f "$second" ] || die "deb NAME FIRST.deb SECOND.deb: both packages must exist (make deb)"
    install -m 0644 "$first" "$second" "$DIR/root/root/"
    local f1 f2 v1 v2
    f1=/root/$(basename "$first")
    f2=/root/$(basename "$second")
    v1=$(dpkg-deb -f "$first" Version)
    v2=$(dpkg-deb -f "$second" Version)
    dpkg --compare-versions "$v2" gt "$v1" || die "$second ($v2) is not newer than $first ($v1)"
    local t0=$SECONDS
    in_container "$name" dpkg -i "$f1" </dev/null >&2 || die "$name: dpkg -i $f1 failed"
    log "deb: dpkg -i $v1 took $((SECONDS - t0))s"

    # Installed, nothing started or enabled: the shipped table is an example.
    local u state
    for u in rollbackd.service rollbackd-exec.socket; do
        state="$(in_container "$name" systemctl is-enabled "$u" || true) $(in_container "$name" systemctl is-active "$u" || true)"
        [ "$state" = "disabled inactive" ] || die "$name: after dpkg -i, $u is '$state', expected 'disabled inactive'"
    done
    in_container "$name" getent passwd rollbackd >/dev/null || die "$name: dpkg -i did not create user rollbackd"
    state=$(in_container "$name" stat -c '%a %U:%G' /etc/rollbackd/thresholds.json)
    [ "$state" = "640 root:rollbackd" ] || die "$name: /etc/rollbackd/thresholds.json is '$state', expected 640 root:rollbackd"
    # (Whole outputs, then grep: grep -q stopping early would fail the pipeline with SIGPIPE.)
    local out
    out=$(in_container "$name" dpkg-query -W -f '${Conffiles}\n' rollbackd)
    grep -q ' /etc/rollbackd/thresholds.json ' <<<"$out" || die "$name: /etc/rollbackd/thresholds.json is not a conffile"
    out=$(in_container "$name" journalctl --list-catalog)
    grep -q rollbackd <<<"$out" || die "$name: the catalog was not updated"
    local f
    for f in /usr/bin/rollbackd /lib/systemd/system/rollbackd.service /usr/lib/sysusers.d/rollbackd.conf \
        /usr/share/man/man8/rollbackd.8.gz /usr/share/man/man5/thresholds.json.5.gz \
        /usr/share/bash-completion/completions/rollbackd /usr/share/zsh/vendor-completions/_rollbackd \
        /usr/share/fish/vendor_completions.d/rollbackd.fish /usr/share/doc/rollbackd/copyright; do
        in_container "$name" test -e "$f" || die "$name: the package did not install $f"
    done

    # The operator's table (the scenarios' demo service and config), then start: READY (Type=notify).
    scenario_fixture "$name"
    in_container "$name" systemctl start rollbackd.service || die "$name: systemctl start rollbackd.service failed"
    [ "$(unit_prop "$name" rollbackd.service ActiveState)" = active ] || die "$name: rollbackd.service is not active"
    local pid_before sum_before
    pid_before=$(unit_prop "$name" rollbackd.service MainPID)
    sum_before=$(in_container "$name" sha256sum /etc/rollbackd/thresholds.json)

    # Upgrade: the second build. The changed table is kept without a question (the shipped one did not change),
    # the running watchdog is restarted on the new binary.
    t0=$SECONDS
    in_container "$name" dpkg -i "$f2" </dev/null >&2 || die "$name: dpkg -i $f2 (the upgrade) failed"
    log "deb: dpkg -i $v2 (upgrade) took $((SECONDS - t0))s"
    [ "$(in_container "$name" dpkg-query -W -f '${Version}' rollbackd)" = "$v2" ] || die "$name: $v2 is not installed"
    [ "$(in_container "$name" sha256sum /etc/rollbackd/thresholds.json)" = "$sum_before" ] ||
        die "$name: the upgrade changed the operator's /etc/rollbackd/thresholds.json"
    [ -z "$(in_container "$name" find /etc/rollbackd -name '*.dpkg-*')" ] ||
        die "$name: the upgrade left .dpkg-* files in /etc/rollbackd"
    local pid_after
    pid_after=$(unit_prop "$name" rollbackd.service MainPID)
    [ "$(unit_prop "$name" rollbackd.service ActiveState)" = active ] && [ "$pid_after" != "$pid_before" ] &&
        [ "$pid_after" != 0 ] || die "$name: the upgrade did not restart rollbackd.service (pid $pid_before -> $pid_after)"
    in_container "$name" /usr/bin/rollbackd status --json >/dev/null || die "$name: the restarted daemon does not answer"

    # Purge: the watchdog stops, the program, the config and the state go; the user stays (Debian's practice).
    t0=$SECONDS
    in_container "$name" dpkg --purge rollbackd </dev/null >&2 || die "$name: dpkg --purge rollbackd failed"
    log "deb: dpkg --purge took $((SECONDS - t0))s"
    state=$(in_container "$name" systemctl is-active rollbackd.service || true)
    [ "$state" = inactive ] || [ "$state" = unknown ] || die "$name: rollbackd.service is '$state' after the purge"
    for f in /usr/bin/rollbackd /etc/rollbackd /var/lib/rollbackd /lib/systemd/system/rollbackd.service; do
        in_container "$name" test ! -e "$f" || die "$name: $f is still there after dpkg --purge"
    done
    in_container "$name" getent passwd rollbackd >/dev/null || die "$name: the purge removed user rollbackd"
    echo "deb: dpkg -i $v1 started nothing; the operator's table ran READY; the upgrade to $v2 kept it and" \
        "restarted the watchdog (pid $pid_before -> $pid_after); the purge removed program, config and state," \
        "kept user rollbackd"
}

# ---------------------------------------------------------------------------------------------------------------
# Sandbox probes: the hardening of the shipped units, exercised for real inside the container.

cmd_probe_daemon_sandbox() {
    local name=${1:-}
    valid_name "$name"
    load_state "$name"
    # Only what makes it a oneshot changes; every hardening line of the installed unit stays in force.
    in_container "$name" sh -c 'mkdir -p /run/systemd/system/rollbackd.service.d &&
        cat >/run/systemd/system/rollbackd.service.d/probe.conf && systemctl daemon-reload' <<'EOF'
[Service]
Type=oneshot
ExecStart=
ExecStart=/usr/local/bin/rollbackd check /etc/rollbackd/thresholds.json
ExecReload=
WatchdogSec=0
Restart=no
EOF
    local rc=0
    in_container "$name" systemctl start rollbackd.service || rc=$?
    local out
    out=$(in_container "$name" journalctl -u rollbackd.service --no-pager -o cat)
    in_container "$name" sh -c 'rm -rf /run/systemd/system/rollbackd.service.d && systemctl daemon-reload'
    if [ $rc -ne 0 ] || ! grep -q 'critical-error-rate' <<<"$out"; then
        tail -n 20 <<<"$out" >&2
        die "$name: rollbackd check did not run under rollbackd.service's hardening (systemctl start: $rc)"
    fi
    local owner
    owner=$(in_container "$name" stat -c '%U:%G %a' /var/lib/rollbackd)
    [ "$owner" = "rollbackd:rollbackd 750" ] ||
        die "$name: /var/lib/rollbackd is '$owner', expected rollbackd:rollbackd 750"
    echo "probe-daemon-sandbox: rollbackd check ran under rollbackd.service's full hardening; state dir $owner"
}

cmd_probe_exec_sandbox() {
    local name=${1:-}
    valid_name "$name"
    load_state "$name"
    # A stand-in for `rollbackd execute`: the shipped strategy (symlink swap under /srv, then systemctl restart)
    # must work, reading the daemon's 0600 state must work, and writing anything else, opening an AF_INET
    # socket or chown must not.
    in_container "$name" sh -c 'cat >/run/rollbackd-exec-probe.sh' <<'EOF'
set -u
fail() { echo "PROBE FAIL: $*"; exit 1; }
mkdir -p /srv/probe/releases/v1 /srv/probe/releases/v2 || fail "mkdir under /srv"
ln -sfn releases/v1 /srv/probe/current || fail "symlink under /srv"
ln -sfn releases/v2 /srv/probe/current.new && mv -T /srv/probe/current.new /srv/probe/current ||
    fail "symlink swap under /srv"
[ "$(readlink /srv/probe/current)" = releases/v2 ] || fail "the swap did not happen"
systemctl restart rollbackd-probe-target.service || fail "systemctl restart (PID 1 over its private socket)"
head -c 5 /var/lib/rollbackd/probe-state >/dev/null || fail "reading the daemon's 0600 state (CAP_DAC_READ_SEARCH)"
touch /var/lib/rollbackd/probe-write 2>/dev/null && fail "could write the daemon's state"
touch /etc/probe-write 2>/dev/null && fail "could write /etc"
touch /usr/local/bin/probe-write 2>/dev/null && fail "could write /usr"
python3 -c 'import socket; socket.socket(socket.AF_INET)' 2>/dev/null && fail "could open an AF_INET socket"
chown -h nobody /srv/probe/current 2>/dev/null && fail "could chown"
echo "PROBE OK uid=$(id -u)"
EOF
    in_container "$name" sh -c '
        printf "[Service]\nExecStart=/bin/sleep infinity\n" >/run/systemd/system/rollbackd-probe-target.service
        mkdir -p /run/systemd/system/rollbackd-exec@.service.d
        printf "[Service]\nType=oneshot\nStandardInput=null\nStandardOutput=journal\nExecStart=\nExecStart=/bin/sh /run/rollbackd-exec-probe.sh\n" \
            >/run/systemd/system/rollbackd-exec@.service.d/probe.conf
        mkdir -p /var/lib/rollbackd && printf state >/var/lib/rollbackd/probe-state &&
            chown rollbackd:rollbackd /var/lib/rollbackd/probe-state && chmod 0600 /var/lib/rollbackd/probe-state
        systemctl daemon-reload && systemctl start rollbackd-probe-target.service'
    local before after rc=0 out
    before=$(in_container "$name" systemctl show -P ExecMainPID rollbackd-probe-target.service)
    in_container "$name" systemctl start rollbackd-exec@probe.service || rc=$?
    out=$(in_container "$name" journalctl -u rollbackd-exec@probe.service --no-pager -o cat)
    after=$(in_container "$name" systemctl show -P ExecMainPID rollbackd-probe-target.service)
    in_container "$name" sh -c 'systemctl stop rollbackd-probe-target.service
        rm -rf /run/systemd/system/rollbackd-exec@.service.d /run/systemd/system/rollbackd-probe-target.service \
            /run/rollbackd-exec-probe.sh /var/lib/rollbackd/probe-state /srv/probe
        systemctl daemon-reload'
    if [ $rc -ne 0 ] || ! grep -q 'PROBE OK uid=0' <<<"$out"; then
        tail -n 20 <<<"$out" >&2
        die "$name: the executor's sandbox does not fit the shipped strategy (systemctl start: $rc)"
    fi
    [ "$before" != "$after" ] || die "$name: the probe's systemctl restart did not restart its target (pid $before)"
    echo "probe-exec-sandbox: as root, the symlink swap in /srv, systemctl restart and reading the daemon's state work;" \
        "writing elsewhere, AF_INET and chown are refused"
}

# ---------------------------------------------------------------------------------------------------------------
# Daemon scenarios (issue 6), run by ContainerTests in `make test`. Each takes a booted container with `install` done, prints what it checked, and fails with the reason.
# scenario-all runs them in order on one container (they build on each other's state: the fixture, v1 known-good).
#
# Contract they are written against:
#   rollbackd run --config FILE [--state-dir DIR]   Type=notify; READY=1 after the first tick; STATUS= lines
#                                                   beginning "ok:" or "rolling back"
#   rollbackd status --json                         the running daemon's state, through the control socket
#   rollbackd execute                               one request on stdin (socket-activated executor)
#   ROLLBACKD_TEST_HANG_AFTER_TICKS=N               test-only: the loop hangs after N ticks
# and the journal fields of Sources/RollbackSystem/Journal/JournalFields.swift: ROLLBACKD_EVENT (decision,
# rollback_phase, rollback_finished, release_known_good, config_loaded, config_rejected, incident_closed, …),
# ROLLBACKD_INCIDENT, ROLLBACKD_FROM_VERSION, ROLLBACKD_TO_VERSION, and for rollback_phase ROLLBACKD_PHASE (swap,
# reload for the symlink strategy) and ROLLBACKD_PHASE_STATE (started, completed, skipped, failed).
#
#   scenario-ready NAME         sets up the demo fixture; the unit is activating until the first (slow) tick is
#                               done, then active
#   scenario-status NAME        `systemctl status` shows the STATUS line ("ok: …"); `rollbackd status --json` answers
#   scenario-nonroot NAME       `ps` shows the daemon as user rollbackd
#   scenario-exec-refused NAME  connect() to the executor socket as `nobody` fails with EACCES; as rollbackd works
#   scenario-rollback NAME      v2 (bad) goes live and is rolled back to v1; the journal has the decision with its
#                               ROLLBACKD_* fields, and the swap ran in a rollbackd-exec@ unit as root
#   scenario-reload NAME        `systemctl reload` with a valid config (config_loaded) and an invalid one
#                               (config_rejected naming the error; the last good config keeps running)
#   scenario-watchdog NAME      a hung loop (ROLLBACKD_TEST_HANG_AFTER_TICKS) is killed by the watchdog and restarted
#   scenario-kill9 NAME PHASE [daemon|executor]
#                               kill -9 of the daemon (or the executor) once PHASE of a rollback has started;
#                               after the restart the outcome equals the uncrashed run: current -> v1, the swap
#                               completed exactly once, the incident closed
#   scenario-stop NAME          `systemctl stop` is clean (result success, within seconds)
#   scenario-all NAME           all of the above, in that order (kill9 for each phase, daemon and executor)
#   scenario-config [INTERVAL [RELOAD_ARGV_JSON]]
#                               prints the config the scenarios use (ContainerTests checks it with `rollbackd check`)
#   scenario-config-kill9       prints the config scenario-kill9 uses (its reload waits for the test's signal)

# The guarded service for the scenarios: rollbackd-demo-service on 127.0.0.1:18081 serving
# /srv/example-api/current (release.json decides its error rate), plus a steady trickle of requests.
DEMO_PORT=18081
# scenario-ready's first tick waits for this file (the daemon may read /run).
FIRST_TICK_GATE=/run/rollbackd-first-tick-gate
# scenario-kill9's reload phase waits for this file (the executor may read /srv), at most 10 minutes, then fails.
KILL9_GATE=/srv/example-api/kill9-gate
KILL9_RELOAD='["/bin/sh", "-c", "i=0; while [ ! -e '"$KILL9_GATE"' ] && [ $i -lt 6000 ]; do sleep 0.1; i=$((i+1)); done; [ -e '"$KILL9_GATE"' ] && exec /usr/bin/systemctl restart example-api.service"]'

# Writes the scenario config (short intervals so a scenario takes seconds) to stdout.
scenario_config() {
    local interval=${1:-1s} reload=${2:-'["/usr/bin/systemctl", "restart", "example-api.service"]'}
    cat <<EOF
{
  "service": "example-api",
  "interval": "$interval",
  "automation": "full",
  "instances": ["http://127.0.0.1:$DEMO_PORT"],
  "version": { "type": "strategy" },
  "metrics": {
    "error_rate": { "type": "scrape", "path": "/metrics", "measure": "errorRatio",
                    "counter": "http_requests_total", "errorLabels": { "code": "5.." }, "window": "3s" },
    "unhealthy_ratio": { "type": "probe", "path": "/healthz", "measure": "unhealthyRatio", "timeout": "5s",
                         "window": "2s" }
  },
  "triggers": [
    { "name": "critical-error-rate", "metric": "error_rate", "condition": { "above": 0.10 },
      "breaches": 2, "clears": 2, "severity": "critical", "respondWithin": "2m", "automation": "full" },
    { "name": "health-check-failure", "metric": "unhealthy_ratio", "condition": { "above": 0.30 },
      "breaches": 2, "clears": 2, "severity": "critical", "respondWithin": "2m", "automation": "full" }
  ],
  "rollback": {
    "strategy": "symlink",
    "symlink": { "releasesDir": "/srv/example-api/releases", "currentLink": "/srv/example-api/current",
                 "reload": $reload },
    "phaseTimeout": "60s"
  },
  "safety": {
    "cooldown": "5s", "budget": { "max": 20, "window": "1h" }, "deployWindow": "10m", "soak": "3s",
    "verifyFor": "6s", "baselineWindow": "10s", "blindAfter": 3
  },
  "notify": { "journal": { "enabled": true, "identifier": "rollbackd" }, "maxAge": "1h", "webhooks": [] },
  "telemetry": { "listen": "127.0.0.1:9465" }
}
EOF
}

# Replaces the container's /etc/rollbackd/thresholds.json (root:rollbackd 0640, as install leaves it) with stdin.
put_config() {
    local name=$1
    in_container "$name" sh -c 'cat >/etc/rollbackd/thresholds.json.new &&
        chown root:rollbackd /etc/rollbackd/thresholds.json.new && chmod 0640 /etc/rollbackd/thresholds.json.new &&
        mv /etc/rollbackd/thresholds.json.new /etc/rollbackd/thresholds.json'
}

# Sets up releases v1 (good) and v2 (bad), the demo service unit and traffic; current -> v1.
scenario_fixture() {
    local name=$1
    load_state "$name"
    local demo=${ROLLBACKD_DEMO_BIN:-$REPO/.build/debug/rollbackd-demo-service}
    [ -x "$demo" ] || die "no demo service binary at $demo: build it first (swift build)"
    install -D -m 0755 "$demo" "$DIR/root/usr/local/bin/rollbackd-demo-service"
    in_container "$name" sh -c "
        set -e
        mkdir -p /srv/example-api/releases/v1 /srv/example-api/releases/v2
        echo '{\"version\": \"v1\", \"errorRate\": 0.0, \"latencyMs\": 5}' >/srv/example-api/releases/v1/release.json
        echo '{\"version\": \"v2\", \"errorRate\": 0.6, \"latencyMs\": 5}' >/srv/example-api/releases/v2/release.json
        ln -sfn releases/v1 /srv/example-api/current
        cat >/etc/systemd/system/example-api.service <<EOF
[Unit]
Description=the service rollbackd guards in the scenarios
[Service]
ExecStart=/usr/local/bin/rollbackd-demo-service --port $DEMO_PORT --release-dir /srv/example-api/current
DynamicUser=yes
EOF
        cat >/etc/systemd/system/example-traffic.service <<EOF
[Unit]
Description=a steady trickle of requests to example-api
After=example-api.service
[Service]
ExecStart=/bin/sh -c 'while :; do curl -s -o /dev/null http://127.0.0.1:$DEMO_PORT/api/ping; sleep 0.02; done'
DynamicUser=yes
EOF
        systemctl daemon-reload
        systemctl start rollbackd-exec.socket example-api.service example-traffic.service" ||
        die "cannot set up the demo service in $name"
    scenario_config | put_config "$name"
    wait_for "$name" 60 "the demo service answers" curl -sf "http://127.0.0.1:$DEMO_PORT/healthz"
}

# wait_for NAME SECONDS WHAT CMD...: runs CMD inside until it succeeds.
wait_for() {
    local name=$1 secs=$2 what=$3
    shift 3
    local deadline=$((SECONDS + secs))
    while [ $SECONDS -lt $deadline ]; do
        in_container "$name" "$@" >/dev/null 2>&1 && return 0
        sleep 0.3
    done
    die "$name: timed out after ${secs}s waiting until $what ($*)"
}

unit_prop() { in_container "$1" systemctl show -P "$3" "$2"; }

# The container's clock, for --since=@SECONDS.
now_in() { in_container "$1" date +%s; }

# Journal entries (JSON lines) since @SINCE matching FIELD=VALUE...; a journalctl match on several fields is AND.
# Every journalctl here runs with -q: without it an empty result prints "-- No entries --", which `grep -q .`
# and `wc -l` would take for an entry. And under pipefail a pipeline ends in `grep >/dev/null`, never `grep -q`:
# grep -q exits at the first match and the writer's SIGPIPE would fail the pipeline.
events_since() {
    local name=$1 since=$2
    shift 2
    in_container "$name" journalctl -q --no-pager -o json --since="@$since" "$@"
}

# Waits until the daemon is active with an "ok:" STATUS line.
wait_ok() {
    wait_for "$1" "${2:-30}" "rollbackd.service is active with STATUS ok:" sh -c \
        '[ "$(systemctl show -P ActiveState rollbackd.service)" = active ] &&
         case "$(systemctl show -P StatusText rollbackd.service)" in ok:*) true ;; *) false ;; esac'
}

# The rollback as the journal tells it since SINCE (executor phases and requests, the daemon's rollback events), on
# one line, for an error message.
phase_story() {
    in_container "$1" journalctl -q --no-pager -o cat --since="@$2" \
        ROLLBACKD_EVENT=executor_phase + ROLLBACKD_EVENT=executor_request + ROLLBACKD_EVENT=rollback_phase \
        + ROLLBACKD_EVENT=rollback_finished + ROLLBACKD_EVENT=rollback_failed 2>&1 | tail -n 20 | tr '\n' '|'
}

# The last lines rollbackd.service wrote, on one line, for an error message.
unit_journal_tail() {
    in_container "$1" journalctl -u rollbackd.service -n 8 --no-pager -o cat 2>&1 | tr '\n' ' '
}

scenario_ready() {
    local name=$1
    scenario_fixture "$name"
    # The first tick lasts at least 3 s and then until this script says so: a metric command (manual trigger, never
    # acts) that sleeps, then waits for $FIRST_TICK_GATE. The unit is looked at while the tick surely runs.
    in_container "$name" rm -f "$FIRST_TICK_GATE"
    scenario_config | python3 -c '
import json, sys
gate = sys.argv[1]
c = json.load(sys.stdin)
c["metrics"]["slow_probe"] = {"type": "command", "timeout": "300s", "value": "exitStatus",
                              "argv": ["/bin/sh", "-c", "sleep 3; while [ ! -e %s ]; do sleep 0.1; done; exit 0" % gate]}
c["triggers"].append({"name": "slow-probe", "metric": "slow_probe", "condition": {"above": 0}, "breaches": 1,
                      "clears": 1, "severity": "medium", "respondWithin": "30m", "automation": "manual"})
json.dump(c, sys.stdout, indent=1)' "$FIRST_TICK_GATE" | put_config "$name"
    in_container "$name" systemctl start --no-block rollbackd.service
    wait_for "$name" 60 "the first tick's slow metric command runs" pgrep -f "while \\[ ! -e $FIRST_TICK_GATE"
    local state
    state=$(unit_prop "$name" rollbackd.service ActiveState)
    [ "$state" = activating ] ||
        die "$name: rollbackd.service is '$state' while its first tick runs; expected activating until READY"
    in_container "$name" touch "$FIRST_TICK_GATE"
    wait_for "$name" 60 "rollbackd.service is active" sh -c \
        '[ "$(systemctl show -P ActiveState rollbackd.service)" = active ]'
    local started ready
    started=$(unit_prop "$name" rollbackd.service ExecMainStartTimestampMonotonic)
    ready=$(unit_prop "$name" rollbackd.service ActiveEnterTimestampMonotonic)
    [ $((ready - started)) -ge 2500000 ] ||
        die "$name: active $(((ready - started) / 1000)) ms after start; READY must wait for the first (3 s) tick"
    # Back to the plain scenario config for what follows. Stopped first: a running daemon notices the new file on
    # its next tick and reloads, and a reload racing systemd's restart job failed the restart once.
    in_container "$name" systemctl stop rollbackd.service
    scenario_config | put_config "$name"
    in_container "$name" systemctl start rollbackd.service ||
        die "$name: rollbackd.service did not start again: $(unit_journal_tail "$name")"
    in_container "$name" rm -f "$FIRST_TICK_GATE"
    wait_ok "$name"
    echo "scenario-ready: activating until the first tick, active $(((ready - started) / 1000)) ms after start"
}

scenario_status() {
    local name=$1
    wait_ok "$name"
    local text
    text=$(unit_prop "$name" rollbackd.service StatusText)
    in_container "$name" systemctl status --no-pager rollbackd.service | grep 'Status: "ok:' >/dev/null ||
        die "$name: systemctl status does not show the STATUS line"
    in_container "$name" /usr/local/bin/rollbackd status --json | python3 -c 'import json, sys; json.load(sys.stdin)' ||
        die "$name: rollbackd status --json did not answer with JSON"
    # /metrics on the one port the shipped unit lets the daemon bind (SocketBindAllow=tcp:9465, SocketBindDeny=any).
    local scrape
    scrape=$(in_container "$name" python3 -c 'import urllib.request
print(urllib.request.urlopen("http://127.0.0.1:9465/metrics", timeout=10).read().decode())') ||
        die "$name: no answer from /metrics on 127.0.0.1:9465 under the shipped unit"
    case "$scrape" in *'rollbackd_armed{service="example-api"} 1'*) ;;
        *) die "$name: /metrics under the shipped unit lacks rollbackd_armed 1: $(echo "$scrape" | head -5)" ;; esac
    echo "scenario-status: $text; /metrics served on 127.0.0.1:9465"
}

scenario_nonroot() {
    local name=$1
    local pid user
    pid=$(unit_prop "$name" rollbackd.service MainPID)
    [ "$pid" != 0 ] || die "$name: rollbackd.service has no main process"
    user=$(in_container "$name" ps -o user= -p "$pid" | tr -d ' ')
    [ "$user" = rollbackd ] || die "$name: ps shows the daemon (pid $pid) as '$user', not rollbackd"
    echo "scenario-nonroot: ps shows pid $pid as $user"
}

scenario_exec_refused() {
    local name=$1
    local probe='import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
try:
    s.connect("/run/rollbackd-exec.sock")
except OSError as e:
    print(e.errno); sys.exit(0)
print(0)'
    local as_nobody as_rollbackd
    as_nobody=$(in_container "$name" setpriv --reuid=nobody --regid=nogroup --clear-groups python3 -c "$probe")
    [ "$as_nobody" = 13 ] || die "$name: connect() as nobody gave errno '$as_nobody', expected 13 (EACCES)"
    as_rollbackd=$(in_container "$name" setpriv --reuid=rollbackd --regid=rollbackd --init-groups python3 -c "$probe")
    [ "$as_rollbackd" = 0 ] || die "$name: connect() as rollbackd gave errno '$as_rollbackd', expected success"
    echo "scenario-exec-refused: nobody gets EACCES, rollbackd connects"
}

# Operators: alice has `rollbackd` as a supplementary group only (primary group alice, the usual
# `usermod -aG rollbackd alice`), bob is in no rollbackd group. The daemon runs under ProtectProc=invisible, so it
# cannot read their /proc entries: it must take the groups from the socket (SO_PEERGROUPS).
scenario_operators() {
    local name=$1 uid
    wait_ok "$name"
    in_container "$name" sh -c 'id alice >/dev/null 2>&1 || useradd -U -G rollbackd alice
        id bob >/dev/null 2>&1 || useradd -U bob' || die "$name: cannot create the users alice and bob"
    local groups out
    groups=$(in_container "$name" id -Gn alice)
    case " $groups " in *" rollbackd "*) ;; *) die "$name: alice is not in group rollbackd: $groups" ;; esac
    [ "$(in_container "$name" id -gn alice)" = alice ] || die "$name: alice's primary group is not alice"
    # status: served.
    out=$(in_container "$name" runuser -u alice -- /usr/local/bin/rollbackd status 2>&1) ||
        die "$name: rollbackd status as alice (supplementary group rollbackd) failed: $out"
    case "$out" in example-api:*) ;; *) die "$name: rollbackd status as alice said: $out" ;; esac
    # approve: reaches the engine, which answers for the incident (none is pending here), not the peer check.
    out=$(in_container "$name" runuser -u alice -- /usr/local/bin/rollbackd approve INC-none 2>&1) && true
    case "$out" in *"no pending approval for INC-none"*) ;; *) die "$name: rollbackd approve as alice said: $out" ;; esac
    # And a real one: with both triggers `semi`, v2 waits for an approval, alice gives it, v2 is rolled back.
    in_container "$name" systemctl stop rollbackd.service
    scenario_config | python3 -c '
import json, sys
c = json.load(sys.stdin)
for t in c["triggers"]:
    t["automation"] = "semi"
json.dump(c, sys.stdout, indent=1)' | put_config "$name"
    in_container "$name" systemctl start rollbackd.service ||
        die "$name: rollbackd.service did not start with the semi table: $(unit_journal_tail "$name")"
    local since_v2 incident
    since_v2=$(go_live_v2 "$name")
    wait_for "$name" 60 "a pending approval for v2 -> v1" sh -c '/usr/local/bin/rollbackd status --json | python3 -c "
import json, sys
sys.exit(0 if json.load(sys.stdin).get(\"pendingApprovals\") else 1)"'
    incident=$(in_container "$name" /usr/local/bin/rollbackd status --json | python3 -c '
import json, sys
print(json.load(sys.stdin)["pendingApprovals"][0]["incident"])')
    out=$(in_container "$name" runuser -u alice -- /usr/local/bin/rollbackd approve "$incident" 2>&1) ||
        die "$name: rollbackd approve $incident as alice failed: $out"
    case "$out" in "approved $incident: rolling back v2 -> v1") ;; *) die "$name: approve as alice said: $out" ;; esac
    wait_for "$name" 60 "current points at v1 after alice's approval" sh -c \
        '[ "$(readlink /srv/example-api/current)" = releases/v1 ]'
    wait_for "$name" 60 "incident $incident closed" sh -c \
        "journalctl -q --no-pager ROLLBACKD_EVENT=incident_closed ROLLBACKD_INCIDENT=$incident | grep -q ."
    uid=$(in_container "$name" id -u alice)
    events_since "$name" "$since_v2" ROLLBACKD_INCIDENT="$incident" | grep "uid $uid" | grep -i approv >/dev/null ||
        die "$name: no journal entry of incident $incident names alice's approval (uid $uid)"
    in_container "$name" systemctl stop rollbackd.service
    scenario_config | put_config "$name"
    in_container "$name" systemctl start rollbackd.service ||
        die "$name: rollbackd.service did not start again: $(unit_journal_tail "$name")"
    # A command that changes something, journaled with alice's uid: pause, then resume at once.
    local since
    wait_ok "$name"
    since=$(now_in "$name")
    in_container "$name" runuser -u alice -- /usr/local/bin/rollbackd pause --for 1m >/dev/null ||
        die "$name: rollbackd pause as alice failed"
    in_container "$name" runuser -u alice -- /usr/local/bin/rollbackd resume >/dev/null ||
        die "$name: rollbackd resume as alice failed"
    wait_for "$name" 30 "alice's pause in the journal" sh -c \
        "journalctl -q --no-pager --since=@$since ROLLBACKD_EVENT=automation_paused | grep -q 'uid $uid paused'"
    # bob: refused, told which group he needs (the 0750 runtime directory refuses him before the daemon does).
    local refusal
    refusal=$(in_container "$name" runuser -u bob -- /usr/local/bin/rollbackd status 2>&1) &&
        die "$name: rollbackd status as bob (not in group rollbackd) succeeded: $refusal"
    case "$refusal" in
        *"group rollbackd"*) ;;
        *) die "$name: bob's refusal does not name group rollbackd: $refusal" ;;
    esac
    # The executor socket: alice passes the executor's own peer check (a made-up incident is then refused by the
    # order gate, not the caller gate); bob cannot connect.
    local probe='import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
try:
    s.connect("/run/rollbackd-exec.sock")
except OSError as e:
    print("errno", e.errno); sys.exit(0)
s.sendall(b"{\"incident\": \"INC-none\", \"to\": \"v1\"}\n")
print(s.makefile().readline().strip())'
    out=$(in_container "$name" runuser -u alice -- python3 -c "$probe")
    case "$out" in *'"gate":"order"'*) ;; *) die "$name: the executor's answer to alice: $out" ;; esac
    out=$(in_container "$name" runuser -u bob -- python3 -c "$probe")
    [ "$out" = "errno 13" ] || die "$name: bob on the executor socket got: $out"
    echo "scenario-operators: alice (supplementary group rollbackd) served status, approve (incident $incident" \
        "rolled back on her approval), pause and resume and" \
        "passed the executor's peer check; bob refused (executor socket: $out): $refusal"
}

# Waits until the daemon has v1 live and known-good (soak 3 s after it went live), then puts v2 live; prints the
# container time before the switch.
go_live_v2() {
    local name=$1
    wait_ok "$name"
    wait_for "$name" 60 "rollbackd status says v1 is live and known-good" sh -c \
        '/usr/local/bin/rollbackd status --json | python3 -c "
import json, sys
r = json.load(sys.stdin)
sys.exit(0 if r.get(\"current\") == \"v1\" and r.get(\"knownGood\") == \"v1\" else 1)"'
    local since
    since=$(now_in "$name")
    in_container "$name" sh -c 'ln -sfn releases/v2 /srv/example-api/current.new &&
        mv -T /srv/example-api/current.new /srv/example-api/current && systemctl restart example-api.service'
    echo "$since"
}

scenario_rollback() {
    local name=$1
    events_since "$name" 0 ROLLBACKD_EVENT=release_known_good | grep '"v1"' >/dev/null ||
        wait_for "$name" 60 "v1 is known-good" sh -c \
            'journalctl -q --no-pager -o json ROLLBACKD_EVENT=release_known_good | grep -q "\"v1\""'
    local since
    since=$(go_live_v2 "$name")
    # The "rolling back" STATUS line lasts as long as the rollback: look for it, report whether it was seen.
    local seen="not seen"
    for _ in $(seq 1 100); do
        case "$(unit_prop "$name" rollbackd.service StatusText)" in "rolling back"*) seen=seen; break ;; esac
        [ "$(in_container "$name" readlink /srv/example-api/current)" = releases/v1 ] && break
        sleep 0.1
    done
    wait_for "$name" 60 "current points at v1 again" sh -c '[ "$(readlink /srv/example-api/current)" = releases/v1 ]'
    wait_for "$name" 60 "the rollback finished" sh -c \
        "journalctl -q --no-pager --since=@$since ROLLBACKD_EVENT=rollback_finished | grep -q ."
    local decision field
    decision=$(events_since "$name" "$since" ROLLBACKD_EVENT=decision | tail -n 1)
    [ -n "$decision" ] || die "$name: no decision entry in the journal"
    for field in ROLLBACKD_INCIDENT ROLLBACKD_TRIGGER ROLLBACKD_FROM_VERSION ROLLBACKD_TO_VERSION ROLLBACKD_DECISION \
        ROLLBACKD_REASON MESSAGE_ID PRIORITY; do
        grep -q "\"$field\"" <<<"$decision" || die "$name: the decision entry lacks $field: $decision"
    done
    grep -q '"ROLLBACKD_FROM_VERSION":"v2"' <<<"$decision" || die "$name: the decision is not from v2: $decision"
    grep -q '"ROLLBACKD_TO_VERSION":"v1"' <<<"$decision" || die "$name: the decision is not to v1: $decision"
    in_container "$name" journalctl -q --no-pager -u rollbackd.service | grep 'ROLLBACKD\|rollback' >/dev/null ||
        die "$name: journalctl -u rollbackd shows nothing about the rollback"
    # The privileged step ran in a rollbackd-exec@ unit, as root.
    in_container "$name" journalctl -q --no-pager -o json --since="@$since" ROLLBACKD_EVENT=executor_phase |
        grep '"_SYSTEMD_UNIT":"rollbackd-exec@' | grep '"_UID":"0"' >/dev/null ||
        die "$name: no executor_phase entry from a rollbackd-exec@ unit running as root since the switch to v2"
    echo "scenario-rollback: v2 -> v1 through the executor unit; the decision has its ROLLBACKD_* fields;" \
        "STATUS 'rolling back' $seen"
}

scenario_reload() {
    local name=$1
    wait_ok "$name"
    local since
    since=$(now_in "$name")
    scenario_config 2s | put_config "$name"
    in_container "$name" systemctl reload rollbackd.service || die "$name: systemctl reload (valid config) failed"
    wait_for "$name" 60 "config_loaded after the valid reload" sh -c \
        "journalctl -q --no-pager --since=@$since ROLLBACKD_EVENT=config_loaded | grep -q ."
    [ "$(unit_prop "$name" rollbackd.service ActiveState)" = active ] || die "$name: not active after a valid reload"
    # An invalid file: the last good config keeps running and config_rejected names the error.
    scenario_config 2s | sed 's/"automation": "full"/"automation": "fulll"/' | put_config "$name"
    in_container "$name" systemctl reload rollbackd.service || true
    wait_for "$name" 60 "config_rejected naming the error" sh -c \
        "journalctl -q --no-pager --since=@$since ROLLBACKD_EVENT=config_rejected | grep -q fulll"
    [ "$(unit_prop "$name" rollbackd.service ActiveState)" = active ] || die "$name: not active after an invalid reload"
    wait_ok "$name" 60
    scenario_config | put_config "$name"
    in_container "$name" systemctl reload rollbackd.service
    echo "scenario-reload: valid config loaded, invalid config rejected, still active and ok"
}

scenario_watchdog() {
    local name=$1
    in_container "$name" sh -c 'mkdir -p /run/systemd/system/rollbackd.service.d &&
        printf "[Service]\nEnvironment=ROLLBACKD_TEST_HANG_AFTER_TICKS=3\nWatchdogSec=4s\n" \
            >/run/systemd/system/rollbackd.service.d/hang.conf && systemctl daemon-reload'
    local since restarts
    since=$(now_in "$name")
    in_container "$name" systemctl restart rollbackd.service
    restarts=$(unit_prop "$name" rollbackd.service NRestarts)
    wait_for "$name" 60 "the watchdog restarted the hung daemon" sh -c \
        "[ \$(systemctl show -P NRestarts rollbackd.service) -gt $restarts ]"
    in_container "$name" journalctl -q --no-pager --since="@$since" -u rollbackd.service | grep "Watchdog timeout" >/dev/null ||
        die "$name: no 'Watchdog timeout' from systemd in the journal"
    in_container "$name" sh -c 'rm -rf /run/systemd/system/rollbackd.service.d && systemctl daemon-reload &&
        systemctl restart rollbackd.service'
    wait_ok "$name"
    echo "scenario-watchdog: the hung loop was killed by the watchdog and restarted"
}

# kill -9 once PHASE (swap or reload, the symlink strategy's phases) has started, of the daemon or the executor.
# The reload waits for $KILL9_GATE, which this script creates only after the kill: the kill always lands inside the
# rollback, before its last phase is done. After the restart: current -> v1, the swap completed exactly once (a
# resumed run reports it skipped), the incident closed.
scenario_kill9() {
    local name=$1 phase=${2:-} who=${3:-daemon}
    [ -n "$phase" ] || die "scenario-kill9 NAME PHASE [daemon|executor]"
    case "$who" in daemon | executor) ;; *) die "scenario-kill9: who must be daemon or executor, not $who" ;; esac
    in_container "$name" rm -f "$KILL9_GATE"
    scenario_config 1s "$KILL9_RELOAD" | put_config "$name"
    in_container "$name" sh -c 'ln -sfn releases/v1 /srv/example-api/current.new &&
        mv -T /srv/example-api/current.new /srv/example-api/current && systemctl restart example-api.service'
    in_container "$name" systemctl restart rollbackd.service
    local since
    since=$(go_live_v2 "$name")
    # The executor's own entries: it is the process that changes the system, and it journals each phase itself.
    wait_for "$name" 60 "phase $phase started" sh -c \
        "journalctl -q --no-pager --since=@$since ROLLBACKD_EVENT=executor_phase ROLLBACKD_PHASE=$phase ROLLBACKD_PHASE_STATE=started | grep -q ."
    # Everything below is about this rollback's incident: a second-resolution --since cannot tell this scenario's
    # entries from the previous one's when both fall in the same second.
    local inc
    inc=$(events_since "$name" "$since" ROLLBACKD_EVENT=executor_phase ROLLBACKD_PHASE="$phase" \
        ROLLBACKD_PHASE_STATE=started | python3 -c '
import json, sys
print([json.loads(l).get("ROLLBACKD_INCIDENT", "") for l in sys.stdin][-1])')
    [ -n "$inc" ] || die "$name: the executor's phase $phase entry names no incident"
    if [ "$who" = daemon ]; then
        # The daemon is the unit's main process (the rollback runs in the executor's unit). --kill-whom=main: with
        # the default (all), systemd 252 also walks the cgroup for other processes and now and then fails that walk
        # ("Failed to send signal SIGKILL to auxiliary processes: Input/output error", seen once under load; the
        # same intermittent failure is containerd/nerdctl#3147) although the daemon was killed.
        in_container "$name" systemctl kill --kill-whom=main --signal=SIGKILL rollbackd.service
    else
        in_container "$name" sh -c 'systemctl kill --signal=SIGKILL "rollbackd-exec@*.service"'
    fi
    # The reload (the killed executor's, or the one run again by its successor) may finish now.
    in_container "$name" touch "$KILL9_GATE"
    # Restart=on-failure brings the daemon back (or the daemon sees the executor die); it resumes the incident.
    wait_for "$name" 60 "current points at v1 after the crash" sh -c \
        '[ "$(readlink /srv/example-api/current)" = releases/v1 ]'
    wait_for "$name" 60 "incident $inc closed after the crash" sh -c \
        "journalctl -q --no-pager ROLLBACKD_EVENT=incident_closed ROLLBACKD_INCIDENT=$inc | grep -q ."
    # Every phase completed exactly once, as the executor that ran it recorded it (a resumed run reports the
    # phases it finds done as skipped).
    local p n
    for p in swap reload; do
        n=$(events_since "$name" "$since" ROLLBACKD_EVENT=executor_phase ROLLBACKD_PHASE=$p \
            ROLLBACKD_PHASE_STATE=completed ROLLBACKD_INCIDENT="$inc" | wc -l)
        [ "$n" = 1 ] || die "$name: phase $p completed $n times after kill -9 of the $who during $phase; what the executors and the daemon said: $(phase_story "$name" "$since")"
    done
    # The same outcome as without the crash: verified, not failed, automation still armed.
    [ -n "$(events_since "$name" "$since" ROLLBACKD_EVENT=verification_passed)" ] ||
        die "$name: no verification_passed after kill -9 of the $who during $phase"
    [ -z "$(events_since "$name" "$since" ROLLBACKD_EVENT=rollback_failed)" ] ||
        die "$name: rollback_failed after kill -9 of the $who during $phase"
    wait_ok "$name" 60
    echo "scenario-kill9: kill -9 of the $who during $phase; back on v1 and verified, each phase completed once"
}

scenario_stop() {
    local name=$1
    local t0=$SECONDS
    in_container "$name" systemctl stop rollbackd.service || die "$name: systemctl stop failed"
    local result
    result=$(unit_prop "$name" rollbackd.service Result)
    [ "$result" = success ] || die "$name: stop result is '$result'"
    [ $((SECONDS - t0)) -le 10 ] || die "$name: stop took $((SECONDS - t0)) s"
    echo "scenario-stop: clean in $((SECONDS - t0)) s"
}

scenario_all() {
    local name=$1
    scenario_ready "$name"
    scenario_status "$name"
    scenario_nonroot "$name"
    scenario_exec_refused "$name"
    scenario_operators "$name"
    scenario_rollback "$name"
    scenario_reload "$name"
    scenario_watchdog "$name"
    local phase who
    for phase in ${ROLLBACKD_KILL9_PHASES:-swap reload}; do
        for who in daemon executor; do
            scenario_kill9 "$name" "$phase" "$who"
        done
    done
    scenario_stop "$name"
}

# ---------------------------------------------------------------------------------------------------------------

usage() {
    sed -n '2,20p' "$SELF" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case "$cmd" in
    prepare) cmd_prepare "$@" ;;
    boot) cmd_boot "$@" ;;
    exec) cmd_exec "$@" ;;
    install) cmd_install "$@" ;;
    deb) cmd_deb "$@" ;;
    stop) cmd_stop "$@" ;;
    probe-daemon-sandbox) need_root; cmd_probe_daemon_sandbox "$@" ;;
    probe-exec-sandbox) need_root; cmd_probe_exec_sandbox "$@" ;;
    scenario-config) scenario_config "$@" ;;
    scenario-config-kill9) scenario_config 1s "$KILL9_RELOAD" ;;
    scenario-ready | scenario-status | scenario-rollback | scenario-reload | scenario-watchdog | scenario-stop | \
        scenario-nonroot | scenario-exec-refused | scenario-operators | scenario-kill9 | scenario-all)
        need_root
        [ -n "${1:-}" ] || die "$cmd NAME"
        valid_name "$1"
        fn=${cmd//-/_}
        "$fn" "$@" ;;
    *) usage ;;
esac
