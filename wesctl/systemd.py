"""Render wesctl's systemd units from its settings, and install them.

Timer and socket files cannot read environment variables, so the intervals, the notification
address, the idle exit and the metrics directory are written into the unit text here. The
repository's `systemd/` directory is `render_units()` of the default settings (a golden test keeps
them equal), so an operator can install either. Pure text in, files out: no systemctl calls.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

from wesctl.config import FIELDS, Settings
from wesctl.errors import ConfigError

DEFAULT_WESCTL_PATH = "/opt/wesctl/venv/bin/wesctl"
DEFAULT_ENV_FILE = "/etc/wesctl/wesctl.env"
DEFAULT_METRICS_DIR = "/var/lib/node_exporter/textfile_collector"
UNIT_DIR = Path("etc/systemd/system")

# Every secret wesctl reads from $CREDENTIALS_DIRECTORY; only serve-notify checks the notify token.
_NOTIFY_ONLY_CREDENTIALS = ("notify-token",)
_CREDENTIALS = tuple(f.credential for f in FIELDS if f.credential)

_DESCRIPTIONS = {
    "submit-queued": "submit queued WES runs to their providers",
    "sync-status": "sync run states from the providers and cancel canceled runs",
}

_HEADER = """\
# Rendered by `wesctl systemd render` from wesctl's settings. To change a rendered value, change
# the setting in the env file and run `wesctl systemd install --prefix /` and
# `systemctl daemon-reload`; for anything else add a drop-in (`systemctl edit UNIT`).
"""

_SERVICE_COMMON = """\
# Non-secret settings (DAEMON_*, WESCTL_*, AWS_REGION, ...): KEY=VALUE lines, read by systemd
# before sandboxing ("-": the file is optional).
EnvironmentFile=-{env_file}
# Secrets, read by wesctl from $CREDENTIALS_DIRECTORY/<name>. A bare name is looked up in
# /etc/credstore/, /run/credstore/ and /usr/lib/credstore/ (keep them root-only), and a name with
# no file there is skipped instead of failing the start: create files only for what you use.
{credentials}
# /var/lib/wesctl: state (last success times) and the working directory, so the default SQLite
# database (DATABASE_URI unset) is /var/lib/wesctl/wes.db, writable despite ProtectSystem=strict.
StateDirectory=wesctl
StateDirectoryMode=0750
WorkingDirectory=/var/lib/wesctl
Environment=PYTHONUNBUFFERED=1 TYPER_STANDARD_TRACEBACK=1
SyslogIdentifier={name}
"""

_ONESHOT_SERVICE = """\
# {name}.service: one pass of `wesctl {command}`, started by its timer.
{header}
[Unit]
Description=wesctl: {description}
Wants=network-online.target
After=network-online.target

[Service]
Type=oneshot
ExecStart={wesctl} {command}
{common}
# A hung pass (stalled network) is stopped: SIGTERM, then SIGKILL after TimeoutStopSec=. The next
# tick starts a fresh pass; claims a killed pass held expire after WESCTL_CLAIM_TIMEOUT.
TimeoutStartSec=15min
TimeoutStopSec=30s
# 75 (EX_TEMPFAIL) = database or provider unreachable, retried on the next tick. Counted as success
# so an outage does not fail the unit (and fire OnFailure=) every tick; the code stays visible in
# `systemctl show -p ExecMainStatus` and in the metrics, whose last-success age catches long
# outages. 1 (some runs failed) and 78 (EX_CONFIG) fail the unit.
SuccessExitStatus=75
"""

_TIMER = """\
# {name}.timer: starts {name}.service every {interval}s.
{header}
[Unit]
Description=wesctl: run {command} every {interval}s

[Timer]
# First pass 2 min after boot. A timer with only OnUnit*Sec= never fires while its service has not
# run yet; when the timer starts long after boot (install.sh), this has passed and fires at once.
OnBootSec=2min
# {setting}, measured from the end of the previous pass: passes never run
# back to back, whatever their length, and the providers always get this gap.
OnUnitInactiveSec={interval}s
# The default accuracy is 1 min; wakeups are cheap on a server.
AccuracySec=1s
# Adds a fresh 0..{delay}s to every elapse, so hosts sharing one database do not start together.
RandomizedDelaySec={delay}s
# No Persistent=: it applies only to OnCalendar=. After downtime, OnBootSec= starts the first pass.

[Install]
WantedBy=timers.target
"""

_SOCKET = """\
# wesctl-notify.socket: the endpoint the WES API POSTs each new run id to (HTTP 200 within 2 s).
{header}
[Unit]
Description=wesctl: notification endpoint socket

[Socket]
# DAEMON_NOTIFICATION_HOST:DAEMON_NOTIFICATION_PORT. Any local user can connect: wesctl treats a
# notification as an untrusted hint (and checks WESCTL_NOTIFY_TOKEN when set). For a unix socket
# see wesctl-notify.socket.d/50-unix.conf.example.
ListenStream={listen}
# Lets the socket bind an address the host does not have yet (an IP that arrives later).
FreeBind=yes
# One process gets the listening socket and serves every connection; Accept=yes would start a
# Python process per notification and miss the 2 s budget under any burst.
Accept=no
FileDescriptorName=notify
# Backlog= stays at its default, the maximum (capped by net.core.somaxconn): connections that
# arrive while wesctl-notify.service starts wait there.
# Trigger limit: with Accept=no it counts activations (service starts), not connections. Every
# idle exit makes the next notification an activation, and the default (20 per 2s) failing the
# socket would stop all notifications until an operator restarts it. Set looser than the
# service's StartLimitBurst=, so a crash loop trips that limit, which names the cause, first.
TriggerLimitIntervalSec=60s
TriggerLimitBurst=60

[Install]
WantedBy=sockets.target
"""

_NOTIFY_SERVICE = """\
# wesctl-notify.service: `wesctl serve-notify`, started by wesctl-notify.socket on the first
# connection; it answers at once, works after replying and exits after {idle}s idle
# (WESCTL_NOTIFY_IDLE_EXIT). The socket stays open meanwhile, so nothing is lost.
{header}
[Unit]
Description=wesctl: notification endpoint
Requires=wesctl-notify.socket
After=wesctl-notify.socket network-online.target
Wants=network-online.target
# Start-rate limit: every activation after an idle exit is a start, and the default (5 per 10s)
# would fail the service and its socket after a burst of short-lived activations. 30 per 60s
# allows one start every 2s (keep WESCTL_NOTIFY_IDLE_EXIT >= 10), yet a crash loop (such as 78,
# bad config, with notifications waiting) still ends in a failed socket within a minute: alert on
# it; recover with `systemctl reset-failed wesctl-notify.service wesctl-notify.socket` and
# `systemctl start wesctl-notify.socket`.
StartLimitIntervalSec=60s
StartLimitBurst=30

[Service]
Type=exec
ExecStart={wesctl} serve-notify --idle-exit {idle}
{common}
TimeoutStopSec=10s
# A crash restarts the handler; a configuration error (78, EX_CONFIG) needs an operator.
Restart=on-failure
RestartSec=2s
RestartPreventExitStatus=78
"""

_HARDENING = """\
# wesctl-.service.d/50-hardening.conf: sandbox for every wesctl-*.service (a prefix drop-in).
# wesctl needs outbound HTTPS, the database and its state directory, nothing else.
# `systemd-analyze security wesctl-submit-queued.service` rates this about 1.1 (OK); what remains
# is inherent to calling arbitrary HTTPS endpoints (no PrivateNetwork=, no IPAddressDeny=).
{header}
[Service]
# A static user from sysusers.d (deploy/sysusers.d/wesctl.conf): a stable UID for PostgreSQL peer
# authentication and for files shared by the timer jobs and the notify service.
User=wesctl
Group=wesctl
# New files are 0600. wesctl chmods its node_exporter .prom files to 0644 after writing them.
UMask=0077
NoNewPrivileges=yes
# Read-only filesystem except /var/lib/wesctl (StateDirectory=) and the paths below ("-": skipped
# if missing). Python cannot write bytecode at runtime: compile it at install time.
ProtectSystem=strict
ReadWritePaths=-{metrics_dir}
# The venv must not live under /home or /root (203/EXEC otherwise): /opt/wesctl/venv.
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
PrivateUsers=yes
PrivateMounts=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
ProtectProc=invisible
ProcSubset=pid
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
# Breaks cffi's old-style ffi.callback() (MemoryError); drop it in a drop-in for that unit only if
# a dependency needs one.
MemoryDenyWriteExecute=yes
RemoveIPC=yes
DevicePolicy=closed
# AF_UNIX: journald, a local PostgreSQL socket, NSS.
RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX
CapabilityBoundingSet=
AmbientCapabilities=
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallFilter=~@privileged @resources
SystemCallErrorNumber=EPERM
"""

_UNIX_SOCKET_EXAMPLE = """\
# Unix-socket variant of wesctl-notify.socket: file permissions decide who may notify.
# To use it: rename this file to 50-unix.conf, add the WES API's user to group wesctl-notify
# (deploy/sysusers.d/wesctl.conf), then `systemctl daemon-reload` and
# `systemctl restart wesctl-notify.socket`. Only for a WES API that can POST over a unix socket:
# the original API POSTs to http://DAEMON_NOTIFICATION_HOST:DAEMON_NOTIFICATION_PORT/ only.
# /run/wesctl comes from deploy/tmpfiles.d/wesctl.conf at 0755 so the group can reach the socket
# (a DirectoryMode=0750 here would make the directory root:root 0750).
[Socket]
# The empty assignment drops the TCP listener. Without it, serve-notify gets both sockets.
ListenStream=
ListenStream=/run/wesctl/notify.sock
SocketUser=wesctl
SocketGroup=wesctl-notify
SocketMode=0660
"""


def render_units(
    settings: Settings,
    *,
    wesctl_path: str = DEFAULT_WESCTL_PATH,
    env_file: str = DEFAULT_ENV_FILE,
) -> dict[str, str]:
    """Return {path relative to the unit directory: file text} for every wesctl unit."""
    wesctl = _unit_path(wesctl_path, "the wesctl executable")
    env = _unit_path(env_file, "the env file")
    metrics_dir = _unit_path(settings.metrics_dir or DEFAULT_METRICS_DIR, "WESCTL_METRICS_DIR")
    shared = [c for c in _CREDENTIALS if c not in _NOTIFY_ONLY_CREDENTIALS]

    def common(name: str, credentials: list[str]) -> str:
        lines = "\n".join(f"LoadCredential={c}" for c in credentials)
        return _SERVICE_COMMON.format(env_file=env, credentials=lines, name=name).rstrip("\n")

    units: dict[str, str] = {}
    jobs = (
        ("submit-queued", settings.poll_interval, "DAEMON_POLL_INTERVAL"),
        ("sync-status", settings.status_check_interval, "DAEMON_STATUS_CHECK_INTERVAL"),
    )
    for command, interval, setting in jobs:
        name = f"wesctl-{command}"
        units[f"{name}.service"] = _ONESHOT_SERVICE.format(
            name=name,
            command=command,
            description=_DESCRIPTIONS[command],
            header=_HEADER,
            wesctl=wesctl,
            common=common(name, shared),
        )
        units[f"{name}.timer"] = _TIMER.format(
            name=name,
            command=command,
            interval=interval,
            setting=setting,
            header=_HEADER,
            delay=interval // 10,
        )
    units["wesctl-notify.socket"] = _SOCKET.format(
        header=_HEADER,
        listen=_listen_address(settings.notification_host, settings.notification_port),
    )
    units["wesctl-notify.service"] = _NOTIFY_SERVICE.format(
        header=_HEADER,
        wesctl=wesctl,
        idle=settings.notify_idle_exit,
        common=common("wesctl-notify", [*shared, *_NOTIFY_ONLY_CREDENTIALS]),
    )
    units["wesctl-.service.d/50-hardening.conf"] = _HARDENING.format(
        header=_HEADER, metrics_dir=metrics_dir
    )
    units["wesctl-notify.socket.d/50-unix.conf.example"] = _UNIX_SOCKET_EXAMPLE
    return units


def install_units(units: dict[str, str], prefix: Path) -> list[Path]:
    """Write `units` under prefix/etc/systemd/system (0644, atomically); return the paths."""
    written = []
    for relative, text in units.items():
        path = prefix / UNIT_DIR / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.tmp")
        partial.write_text(text, encoding="utf-8")
        partial.chmod(0o644)
        os.replace(partial, path)  # systemd never reads a half-written unit
        written.append(path)
    return written


def _unit_path(path: str, what: str) -> str:
    """Return `path` escaped for a unit file; it must be absolute and need no quoting."""
    if not path.startswith("/") or any(c.isspace() or c in "\"'\\;" for c in path):
        raise ConfigError(f"{what} must be an absolute path without spaces or quotes: {path!r}")
    return path.replace("%", "%%")  # systemd expands %-specifiers


def _listen_address(host: str, port: int) -> str:
    """Return a ListenStream= value; systemd binds IP addresses only, never host names."""
    if host == "localhost":
        host = "127.0.0.1"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ConfigError(
            f"DAEMON_NOTIFICATION_HOST = {host!r}: the systemd socket needs an IP address "
            "(such as 127.0.0.1), not a host name"
        ) from None
    return f"[{address}]:{port}" if address.version == 6 else f"{address}:{port}"
