#!/bin/sh
# What `make install` does on a live system after copying the files (and what the integration test's container
# does after `make install-files DESTDIR=…`):
#   post-install.sh SYSUSERS_CONF [FRESH_CONFIG...]
# creates the rollbackd user and group from SYSUSERS_CONF, hands each freshly installed config file to
# root:rollbackd 0640, rebuilds journald's catalog, and reloads systemd when it is running.
set -eu
conf=${1:?usage: post-install.sh SYSUSERS_CONF [FRESH_CONFIG...]}
shift
if command -v systemd-sysusers >/dev/null 2>&1; then
    systemd-sysusers "$conf"
elif ! getent passwd rollbackd >/dev/null; then
    # Without systemd-sysusers: the same user by hand.
    getent group rollbackd >/dev/null || groupadd --system rollbackd
    useradd --system --gid rollbackd --home-dir /var/lib/rollbackd --no-create-home \
        --shell /usr/sbin/nologin --comment "rollbackd automatic rollback watchdog" rollbackd
fi
getent passwd rollbackd >/dev/null || { echo "post-install.sh: user rollbackd was not created" >&2; exit 1; }
for f in "$@"; do
    chown root:rollbackd "$f"
    chmod 0640 "$f"
done
if command -v journalctl >/dev/null 2>&1; then
    journalctl --update-catalog
fi
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload
fi
