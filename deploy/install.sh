#!/usr/bin/env bash
# Install or upgrade wesctl on a systemd host. Run as root; safe to re-run after `git pull`.
#   deploy/install.sh [SOURCE_DIR]     SOURCE_DIR: a wesctl checkout (default: this one)
# Environment: PYTHON (3.11 or newer, default python3), VENV (default /opt/wesctl/venv; keep it
# out of /home and /root, which the units cannot see).
set -euo pipefail

src=$(realpath "${1:-$(dirname "$0")/..}")
python=${PYTHON:-python3}
venv=${VENV:-/opt/wesctl/venv}
env_file=/etc/wesctl/wesctl.env
[[ $EUID -eq 0 ]] || { echo "install.sh: run as root" >&2; exit 1; }

# 1. The package. pip compiles bytecode by default; compileall makes sure of it, because the
#    units see a read-only filesystem and a cold start without .pyc files is several times slower.
"$python" -m venv "$venv"
"$venv/bin/pip" install --quiet "$src"
site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')
"$venv/bin/python" -m compileall -q -j 0 "$site"

# 2. User, directories, configuration skeleton. Files an operator may have edited are kept.
for conf in sysusers.d/wesctl.conf tmpfiles.d/wesctl.conf; do
    [[ -e /etc/$conf ]] || install -D -m 0644 "$src/deploy/$conf" "/etc/$conf"
done
systemd-sysusers /etc/sysusers.d/wesctl.conf
systemd-tmpfiles --create /etc/tmpfiles.d/wesctl.conf
[[ -d /etc/credstore ]] || install -d -m 0700 /etc/credstore
if [[ ! -e $env_file ]]; then
    install -m 0640 -g wesctl "$src/deploy/wesctl.env.example" "$env_file"
    echo "Created $env_file. Edit it, put secrets in /etc/credstore/ (see its header), re-run $0."
    exit 0
fi

# 3. Units rendered from the settings (timer intervals, socket address) into /etc/systemd/system.
"$venv/bin/wesctl" --env-file "$env_file" systemd install --prefix /
systemctl daemon-reload

# 4. Database schema, run as the services run: same settings and credentials, and by its name the
#    wesctl-.service.d drop-in gives it the same user and sandbox.
systemd-run --quiet --wait --pipe --collect --unit=wesctl-db-upgrade \
    -p EnvironmentFile=-"$env_file" -p LoadCredential=database-uri \
    -p StateDirectory=wesctl -p WorkingDirectory=/var/lib/wesctl \
    "$venv/bin/wesctl" db upgrade

# 5. Start (restart picks up new code, intervals and the socket address).
units=(wesctl-submit-queued.timer wesctl-sync-status.timer wesctl-notify.socket)
systemctl enable --quiet "${units[@]}"
systemctl restart "${units[@]}"
systemctl list-timers 'wesctl-*' --no-pager
