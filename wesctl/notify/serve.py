"""`wesctl serve-notify`: open the sockets and the database, then serve notifications.

Sockets, in order: `--listen`, the sockets systemd passes (socket activation, Accept=no; every
one is served), else DAEMON_NOTIFICATION_HOST:DAEMON_NOTIFICATION_PORT. SIGTERM (systemd's stop)
and SIGINT end the server gracefully, exit 0. Each connection is a file descriptor: `serve`
raises the soft RLIMIT_NOFILE (systemd's default is 1024) up to the hard limit for
MAX_CONNECTIONS + FD_RESERVE, and serves fewer connections, with a warning, when the hard limit
is lower.
"""

from __future__ import annotations

import contextlib
import logging
import resource
import signal
import threading
from collections.abc import Iterator
from types import FrameType

from wesctl.config import Settings
from wesctl.db import schema
from wesctl.db.engine import database_errors
from wesctl.errors import ConfigError, DatabaseUnavailable
from wesctl.notify.activation import systemd_listeners
from wesctl.notify.handler import is_ascii_digits
from wesctl.notify.listeners import Listener, bind_tcp, bind_unix
from wesctl.notify.server import MAX_CONNECTIONS, NotifyServer
from wesctl.services.runtime import Runtime

logger = logging.getLogger(__name__)

# Descriptors besides connections: listeners, database, provider clients, logs, MAX_CLOSING.
FD_RESERVE = 96


def bind_listen_option(text: str) -> Listener:
    """Bind `--listen`: HOST:PORT ([::1]:PORT for IPv6), or a unix socket path containing '/'."""
    text = text.strip()
    if "/" in text:
        return bind_unix(text)
    host, _, port = text.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not host or not is_ascii_digits(port) or int(port) > 65535:
        raise ConfigError(
            f"--listen {text!r} is not HOST:PORT (e.g. 127.0.0.1:5001) or a unix socket path "
            "(e.g. /run/wesctl/notify.sock)"
        )
    return bind_tcp(host, int(port))


def open_listeners(settings: Settings, listen: str | None) -> list[Listener]:
    if listen is not None:
        return [bind_listen_option(listen)]
    return systemd_listeners() or [bind_tcp(settings.notification_host, settings.notification_port)]


@contextlib.contextmanager
def _stop_on_signals(server: NotifyServer) -> Iterator[None]:
    """SIGTERM (systemd stop) and SIGINT end the server gracefully; only the main thread can."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        server.stop(f"received {signal.Signals(signum).name}")

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def serve(settings: Settings, *, listen: str | None = None, idle_exit: float | None = None) -> int:
    """Open the sockets and the database, then serve notifications; return the exit code.

    Raises ConfigError (exit 78) when there is no socket to serve, WesctlError subclasses for a
    missing schema. A database that is down at start is not fatal: requests get 503 until it
    is back, rather than systemd restarting us in a loop.
    """
    idle = settings.notify_idle_exit if idle_exit is None else idle_exit
    listeners = open_listeners(settings, listen)
    try:
        runtime = Runtime.open(settings, command="serve-notify", check_schema=False)
        try:
            _check_schema(runtime)
            server = NotifyServer(
                runtime,
                listeners,
                idle_exit=idle,
                token=settings.notify_token.get() if settings.notify_token else None,
                workers=settings.submit_workers,
                max_connections=allow_open_files(MAX_CONNECTIONS),
            )
            with _stop_on_signals(server):
                return server.run()
        finally:
            runtime.close()
    finally:
        for listener in listeners:
            listener.close()


def allow_open_files(connections: int) -> int:
    """Raise the soft limit on open files (RLIMIT_NOFILE) so that `connections` fit beside
    FD_RESERVE, up to the hard limit; return how many connections fit. systemd starts services
    with a soft limit of 1024 and a much higher hard one, which any process may raise to."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = connections + FD_RESERVE
    raised = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < raised:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
        except (OSError, ValueError) as exc:
            logger.warning("cannot raise the open files limit from %d: %s", soft, exc)
        else:
            logger.info("open files limit raised from %d to %d", soft, raised)
            soft = raised
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return connections
    fit = max(1, soft - FD_RESERVE)
    logger.warning(
        "open files limit %d (hard %s) leaves room for %d notification connections, not %d",
        soft,
        "unlimited" if hard == resource.RLIM_INFINITY else hard,
        fit,
        connections,
    )
    return fit


def _check_schema(runtime: Runtime) -> None:
    try:
        with database_errors():
            schema.require_current(runtime.engine)
    except DatabaseUnavailable as exc:
        logger.warning("%s; answering 503 until it is back", exc.message)
