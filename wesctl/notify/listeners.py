"""The listening sockets of the notification endpoint, and the ones it binds itself.

A `Listener` is bound here (`--listen`, DAEMON_NOTIFICATION_HOST:_PORT) or passed by systemd
(`wesctl.notify.activation`); only the ones bound here are closed (and their unix socket file
removed) when the endpoint stops, so systemd's keep their backlog for the next start.
"""

from __future__ import annotations

import contextlib
import os
import socket
import stat
from dataclasses import dataclass, field

from wesctl.errors import ConfigError


@dataclass
class Listener:
    """A listening socket; `owned` ones (bound by us, not systemd) are closed when we stop."""

    sock: socket.socket
    label: str
    owned: bool
    unix_path: str | None = None
    closed: bool = field(default=False, repr=False)

    def close(self) -> None:
        if not self.owned or self.closed:
            return
        self.closed = True
        self.sock.close()
        if self.unix_path:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.unix_path)


def os_error_text(exc: OSError) -> str:
    """The system's words for an error, without what Python appended to them."""
    if exc.errno and exc.errno > 0 and not isinstance(exc, socket.gaierror):
        return os.strerror(exc.errno)
    return exc.strerror or str(exc)


def describe(sock: socket.socket) -> str:
    address = sock.getsockname()
    if sock.family == socket.AF_UNIX:
        if isinstance(address, bytes):  # abstract namespace
            return "unix:@" + address[1:].decode(errors="replace")
        return f"unix:{address or '<unnamed>'}"
    if sock.family == socket.AF_INET6:
        return f"[{address[0]}]:{address[1]}"
    return f"{address[0]}:{address[1]}"


def bind_tcp(host: str, port: int) -> Listener:
    try:
        family, _, _, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.create_server(address, family=family, backlog=socket.SOMAXCONN)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {host}:{port}: {os_error_text(exc)}") from exc
    return Listener(sock, describe(sock), owned=True)


def bind_unix(path: str) -> Listener:
    """Listen on a unix socket at `path`, replacing a stale socket left by a dead process."""
    try:
        if stat.S_ISSOCK(os.lstat(path).st_mode):
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
                try:
                    probe.connect(path)
                except ConnectionRefusedError:
                    os.unlink(path)  # nobody listens: stale
                else:
                    raise ConfigError(f"cannot listen on {path}: another process is serving it")
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise ConfigError(f"cannot listen on {path}: {os_error_text(exc)}") from exc
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
        sock.listen(socket.SOMAXCONN)
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {path}: {os_error_text(exc)}") from exc
    return Listener(sock, f"unix:{path}", owned=True, unix_path=path)
