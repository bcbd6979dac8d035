#!/usr/bin/env bash
# A real Docker engine for the docker-swarm strategy's tests: Debian's dockerd (docker.io), started by hand (no
# systemd as PID 1 here), with its own data root, exec root, pid file and socket under DIR, made a single-node swarm,
# with local images built without any registry (`docker import` of a root holding a static busybox).
#
#   dockerd_harness.sh start DIR   starts it; prints "ready SECONDS" (how long until the engine answered and the
#                                  swarm existed); writes DIR/docker, a docker CLI bound to this engine's socket;
#                                  imports rbtest/app:v1 and :v2 (sleep, healthy) and :broken (exits at once)
#   dockerd_harness.sh stop DIR    leaves the swarm, stops dockerd (TERM, then KILL) and its containerd, removes the
#                                  bridge the swarm made (docker_gwbridge) and the network namespaces and mounts
#                                  under DIR, then DIR itself
#
# iptables and the default bridge are off (--iptables=false --bridge=none): the tests publish no port, and nothing
# is left in the host's firewall. Debian's own CLI (/usr/bin/docker) is used, not whatever else is on PATH.
set -euo pipefail

DOCKERD=${DOCKERD:-/usr/sbin/dockerd}
DOCKER=${DOCKER:-/usr/bin/docker}
BUSYBOX=${BUSYBOX:-/bin/busybox}
die() { echo "dockerd_harness.sh: $*" >&2; exit 1; }

cmd=${1:-}
dir=${2:-}
[ -n "$dir" ] && [ -d "$dir" ] || die "usage: dockerd_harness.sh start|stop DIR (an existing directory)"
dir=$(cd "$dir" && pwd -P)
sock=$dir/docker.sock
cli() { "$DOCKER" -H "unix://$sock" "$@"; }

start() {
    [ -x "$DOCKERD" ] || die "no $DOCKERD: install Debian's docker.io"
    [ -x "$DOCKER" ] || die "no $DOCKER: install Debian's docker.io"
    dpkg -s busybox-static >/dev/null 2>&1 || die "no static busybox: install Debian's busybox-static"
    local t0=$EPOCHREALTIME i
    "$DOCKERD" --data-root "$dir/data" --exec-root "$dir/exec" --pidfile "$dir/dockerd.pid" -H "unix://$sock" \
        --iptables=false --ip6tables=false --bridge=none >"$dir/dockerd.log" 2>&1 </dev/null &
    for i in $(seq 1 300); do
        cli version >/dev/null 2>&1 && break
        kill -0 $! 2>/dev/null || die "dockerd exited: $(tail -n 5 "$dir/dockerd.log")"
        sleep 0.1
    done
    cli version >/dev/null 2>&1 || die "dockerd did not answer on $sock within 30 s: $(tail -n 5 "$dir/dockerd.log")"
    cli swarm init --advertise-addr 127.0.0.1 >/dev/null || die "docker swarm init failed"
    local ready
    ready=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }')
    printf '#!/bin/sh\nexec %s -H unix://%s "$@"\n' "$DOCKER" "$sock" >"$dir/docker"
    chmod 0755 "$dir/docker"
    # Three images, no registry: a root with a static busybox, told its release in /etc/release.
    local root=$dir/rootfs tag
    mkdir -p "$root/bin" "$root/etc"
    cp "$BUSYBOX" "$root/bin/busybox"
    for tag in v1 v2 broken; do
        echo "$tag" >"$root/etc/release"
        local run='["/bin/busybox", "sleep", "3600"]'
        [ "$tag" = broken ] && run='["/bin/busybox", "false"]'
        tar -C "$root" -c . | cli import -c "CMD $run" - "rbtest/app:$tag" >/dev/null ||
            die "docker import rbtest/app:$tag failed"
    done
    echo "ready $ready"
}

stop() {
    if [ -S "$sock" ]; then
        # Services first: their tasks stop within their own grace period, not dockerd's 10 s shutdown timeout.
        cli service ls -q 2>/dev/null | xargs -r "$DOCKER" -H "unix://$sock" service rm >/dev/null 2>&1 || true
        cli swarm leave --force >/dev/null 2>&1 || true
    fi
    local pid=""
    [ -f "$dir/dockerd.pid" ] && pid=$(cat "$dir/dockerd.pid")
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        local children
        children=$(pgrep -P "$pid" || true)
        kill -TERM "$pid"
        local i
        for i in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
        for c in $children; do kill -TERM "$c" 2>/dev/null || true; done
    fi
    ip link delete docker_gwbridge 2>/dev/null || true
    # What an engine killed hard leaves: network namespaces and overlay mounts under DIR.
    local m
    for m in $(awk -v d="$dir/" 'index($2, d) == 1 { print $2 }' /proc/self/mounts | sort -r); do
        umount -l "$m" 2>/dev/null || true
    done
    rm -rf "$dir"
}

case "$cmd" in
start) start ;;
stop) stop ;;
*) die "usage: dockerd_harness.sh start|stop DIR" ;;
esac
