"""Run notifications: the WES API's announcement of a queued run, and wesctl's endpoint for it.

A WES API imports only the client, re-exported here (`from wesctl.notify import notify_daemon`);
it uses the standard library alone. `wesctl serve-notify` runs `serve`, which opens the sockets
(`listeners`, and `activation` for systemd's), and runs a `server` that keeps the connections and
submits the notified runs, with a `handler` answering the requests of each connection.
"""

from wesctl.notify.client import NotifyResult, notify_daemon, send_notification

__all__ = ["NotifyResult", "notify_daemon", "send_notification"]
