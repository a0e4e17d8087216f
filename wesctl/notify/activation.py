"""Socket activation: the listening sockets systemd passes (the sd_listen_fds protocol).

wesctl-notify.socket (Accept=no) hands serve-notify every socket it listens on as descriptors
3, 4, ... with LISTEN_PID, LISTEN_FDS and LISTEN_FDNAMES in the environment; each is served.
"""

from __future__ import annotations

import os
import socket

from wesctl.errors import ConfigError
from wesctl.notify.listeners import Listener, describe, os_error_text

SD_LISTEN_FDS_START = 3


def systemd_listeners() -> list[Listener]:
    """The sockets systemd passed us (sd_listen_fds protocol), or [] when not socket-activated."""
    if os.environ.get("LISTEN_PID") != str(os.getpid()):
        return []  # not activated, or the variables were meant for a parent process
    raw_count = os.environ.get("LISTEN_FDS", "")
    names = os.environ.get("LISTEN_FDNAMES", "").split(":")
    for var in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        os.environ.pop(var, None)  # children must not think they were activated
    try:
        count = int(raw_count)
    except ValueError:
        raise ConfigError(f"LISTEN_FDS={raw_count!r} from systemd is not a number") from None
    listeners = []
    for index in range(count):
        fd = SD_LISTEN_FDS_START + index
        name = names[index] if index < len(names) and names[index] else "unnamed"
        try:
            os.set_inheritable(fd, False)  # systemd passes them without CLOEXEC
            sock = socket.socket(fileno=fd)  # family and type come from the fd
            listening = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
        except OSError as exc:
            raise ConfigError(
                f"systemd fd {fd} ({name}) is unusable: {os_error_text(exc)}"
            ) from exc
        if sock.type != socket.SOCK_STREAM or not listening:
            raise ConfigError(
                f"systemd fd {fd} ({name}) is not a listening stream socket; the socket unit "
                "must use ListenStream= with Accept=no"
            )
        listeners.append(Listener(sock, f"{describe(sock)} (systemd fd {fd} {name})", owned=False))
    return listeners
