"""The notification endpoint's server: it accepts connections, keeps count of them, and submits
the notified runs.

Answers come first. Each connection gets a thread (a NotifyHandler: HTTP/1.1 keep-alive,
pipelining). Lookups waiting at the same moment share one query; a run to submit waits in a queue
for a few worker threads, which claim up to SUBMIT_BATCH at a time through `submit_runs` (the
same claim the timer uses, so a notification racing a timer run never submits twice) and hold
back while requests are being answered. A run that cannot be submitted now (cap reached,
provider down) stays QUEUED for the timer; nothing here retries.

`run` returns after `idle_exit` seconds without requests or pending work, so that systemd starts
the endpoint again on the next connection; a connection is never accepted unless it will be
answered, so the ones arriving meanwhile wait in the socket's backlog. `stop` (SIGTERM): stop
accepting, answer what was received (requests still arriving get until their deadline), finish
the submissions in progress, leave the queued ones to the timer.

Slow and idle clients cannot crowd out the WES API, whose notification arrives in one packet:
besides each request's deadline (`wesctl.notify.handler`), at most MAX_IDLE (128) kept-alive
connections wait at once, beyond that the oldest idle one is closed; and at most MAX_CONNECTIONS
(1024) connections are served at once: a new one makes room by closing the oldest idle
connection, else the oldest incomplete request, so a complete notification is accepted and
answered at once whatever the others do (only requests being answered are never closed; if all
1024 are, the new one waits in the backlog).
"""

from __future__ import annotations

import contextlib
import logging
import queue
import selectors
import socket
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from typing import Any

from wesctl.db import runs as run_queries
from wesctl.db.engine import database_errors
from wesctl.domain.states import RunState
from wesctl.errors import WesctlError
from wesctl.notify.handler import IDLE_TIMEOUT, REQUEST_TIMEOUT, NotifyHandler, Phase, RunLookup
from wesctl.notify.listeners import Listener, describe, os_error_text
from wesctl.services.runtime import Runtime
from wesctl.services.submit import submit_runs

logger = logging.getLogger(__name__)

# Idle keep-alive connections kept open; beyond, the oldest is closed. The WES API keeps at most
# one per worker process or thread, a few dozen at most.
MAX_IDLE = 128
# Connections served at once, one thread each: room for a thousand slow or idle clients. A new
# connection beyond it closes the oldest idle one, else the oldest incomplete request.
MAX_CONNECTIONS = 1024
MAX_CLOSING = 32  # connections we closed whose threads may still be ending (then: backlog)
SHUTDOWN_GRACE = 5.0  # seconds to let requests already received be answered
ANSWER_QUIET = 0.05  # seconds with no request in flight before the next run is submitted
SUBMIT_HOLD = 2.0  # ...but a run waits at most this long for such a quiet moment
SUBMIT_BATCH = 32  # notified runs one worker claims together (one claim transaction)


class NotifyServer:
    """Accepts on every listener, answers each connection in a thread, submits in workers."""

    def __init__(
        self,
        runtime: Runtime,
        listeners: Sequence[Listener],
        *,
        idle_exit: float,
        token: str | None,
        workers: int,
        request_timeout: float = REQUEST_TIMEOUT,
        idle_timeout: float = IDLE_TIMEOUT,
        max_connections: int = MAX_CONNECTIONS,
        max_idle: int = MAX_IDLE,
    ) -> None:
        self.runtime = runtime
        self.listeners = list(listeners)
        self.idle_exit = idle_exit
        self.token = token
        self.request_timeout = request_timeout
        self.idle_timeout = idle_timeout
        self.max_connections = max(1, max_connections)
        self.max_idle = max_idle
        self._worker_count = max(1, workers)
        self._work: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self._changed = threading.Condition()  # guards everything below
        self._pending: set[str] = set()  # queued or being submitted
        self._open = 0  # connections with a thread, closing ones included
        # Open connections by phase, each dict oldest first (a dict keeps insertion order).
        self._phases: dict[Phase, dict[socket.socket, None]] = {phase: {} for phase in Phase}
        self._closing: set[socket.socket] = set()  # shut down by us, their thread still ending
        self._last_activity = time.monotonic()
        self._last_answer = time.monotonic()  # an answer started or ended
        self._stop_requested = False
        self._exit_reason = ""
        self._lookups: dict[str, list[Future[RunLookup]]] = {}  # waiting for the next query
        self._query_lock = threading.Lock()
        self._wake_read, self._wake_write = socket.socketpair()

    def stop(self, reason: str = "stop requested") -> None:
        """Ask run() to finish (safe from a signal handler or another thread)."""
        self._exit_reason = reason
        self._stop_requested = True
        with contextlib.suppress(OSError):
            self._wake_write.send(b"\0")

    # --- bookkeeping used by handlers and workers ----------------------------------------
    def mark(self, connection: socket.socket, phase: Phase) -> None:
        """Record that `connection` entered `phase` (as its newest member); a connection we
        closed stays out. Beyond `max_idle` idle connections, the oldest is closed."""
        with self._changed:
            if connection in self._closing:
                return
            for connections in self._phases.values():
                connections.pop(connection, None)
            self._phases[phase][connection] = None
            self._last_activity = time.monotonic()
            if phase is not Phase.RECEIVING:  # an answer started or ended
                self._last_answer = self._last_activity
            while len(self._phases[Phase.IDLE]) > self.max_idle:
                self._close_oldest(Phase.IDLE, f"more than {self.max_idle} idle connections")
            self._changed.notify_all()

    def _close_oldest(self, phase: Phase, reason: str) -> None:
        """Shut the oldest connection in `phase` down; its thread sees the end and exits.
        Call with self._changed held."""
        connection = next(iter(self._phases[phase]))
        del self._phases[phase][connection]
        self._closing.add(connection)
        with contextlib.suppress(OSError):
            connection.shutdown(socket.SHUT_RDWR)
        logger.debug("closed the oldest %s connection: %s", phase.value, reason)

    def is_pending(self, run_id: str) -> bool:
        with self._changed:
            return run_id in self._pending

    def enqueue(self, run_id: str) -> None:
        """Queue `run_id` for submission unless it is already queued or being submitted."""
        with self._changed:
            if run_id in self._pending:
                return
            self._pending.add(run_id)
        self._work.put(run_id)

    def lookup(self, run_id: str) -> RunLookup:
        """(state, awaiting submission) of the run, or None if there is no such run.

        One query at a time answers every lookup waiting at that moment: a burst of
        notifications costs a few queries instead of one transaction each (on SQLite every
        transaction takes the write lock, so they would queue behind each other and the
        submissions).
        """
        waiter: Future[RunLookup] = Future()
        with self._changed:
            self._lookups.setdefault(run_id, []).append(waiter)
        with self._query_lock:
            if not waiter.done():  # no query answered us while we waited: query for everyone
                with self._changed:
                    batch, self._lookups = self._lookups, {}
                try:
                    found = self._query(list(batch))
                except Exception as exc:  # noqa: BLE001 - every waiter re-raises it below
                    for futures in batch.values():
                        for future in futures:
                            future.set_exception(exc)
                else:
                    for waiting_id, futures in batch.items():
                        for future in futures:
                            future.set_result(found.get(waiting_id))
        return waiter.result()

    def _query(self, run_ids: list[str]) -> dict[str, RunLookup]:
        with database_errors(), self.runtime.readers() as session:
            found = run_queries.submission_states(session, run_ids)
        queued = RunState.QUEUED.value
        return {
            run_id: (state, state == queued and not submitted)
            for run_id, (state, submitted) in found.items()
        }

    # --- the accept loop -------------------------------------------------------------------
    def run(self) -> int:
        """Serve until idle for `idle_exit` seconds (0: never) or stop(); return 0."""
        workers = [
            threading.Thread(target=self._work_loop, name=f"notify-submit-{n}", daemon=True)
            for n in range(self._worker_count)
        ]
        for worker in workers:
            worker.start()
        selector = selectors.DefaultSelector()
        for listener in self.listeners:
            listener.sock.setblocking(False)
            selector.register(listener.sock, selectors.EVENT_READ, listener)
        selector.register(self._wake_read, selectors.EVENT_READ, None)
        logger.info(
            "serving notifications on %s; idle exit %s; bearer token %s",
            ", ".join(listener.label for listener in self.listeners),
            f"after {self.idle_exit:g} s" if self.idle_exit > 0 else "never",
            "required" if self.token else "not required",
        )
        try:
            while not self._stop_requested:
                for key, _ in selector.select(self._select_timeout()):
                    if key.data is not None:
                        self._accept(key.data.sock)
                if self._idle():
                    self._exit_reason = f"idle for {self.idle_exit:g} s"
                    break
        finally:
            selector.close()
            self._shut_down(workers)
        return 0

    def _select_timeout(self) -> float | None:
        if self.idle_exit <= 0:
            return None
        with self._changed:
            remaining = self.idle_exit - (time.monotonic() - self._last_activity)
        return min(0.5, remaining) if remaining > 0 else 0.1  # busy: look again soon

    def _idle(self) -> bool:
        if self.idle_exit <= 0:
            return False
        with self._changed:
            if self._pending or self._phases[Phase.ANSWERING] or self._phases[Phase.RECEIVING]:
                return False
            return time.monotonic() - self._last_activity >= self.idle_exit

    def _accept(self, listening: socket.socket) -> None:
        """Accept every connection waiting in the backlog: one per wakeup would make each wait
        for this thread to win the GIL back from the handlers of the ones before it."""
        while self._accept_one(listening):
            pass

    def _accept_one(self, listening: socket.socket) -> bool:
        if not self._room_to_accept():
            return False  # the connection waits in the backlog
        try:
            connection, address = listening.accept()
        except (BlockingIOError, InterruptedError):
            return False
        except OSError as exc:
            logger.warning("accept on %s failed: %s", describe(listening), os_error_text(exc))
            return False
        accepted = time.monotonic()
        with self._changed:
            if self._open - len(self._closing) >= self.max_connections:
                # Make room: the oldest idle connection, else the oldest incomplete request. A
                # request that arrives whole is answered at once, so it is never the oldest.
                reason = f"{self.max_connections} connections open"
                if self._phases[Phase.IDLE]:
                    self._close_oldest(Phase.IDLE, reason)
                elif self._phases[Phase.RECEIVING]:
                    self._close_oldest(Phase.RECEIVING, reason)
            self._open += 1
            self._phases[Phase.RECEIVING][connection] = None  # its first request starts now
            self._last_activity = accepted
        threading.Thread(
            target=self._serve_connection,
            args=(connection, address, accepted),
            name="notify-connection",
            daemon=True,
        ).start()
        return True

    def _room_to_accept(self) -> bool:
        """False while every connection is being answered (nothing may be closed to make room),
        or while the threads of MAX_CLOSING connections we closed are still ending: descriptors
        stay within max_connections + MAX_CLOSING."""
        with self._changed:
            full = self._open - len(self._closing) >= self.max_connections
            if (full and not self._phases[Phase.IDLE] and not self._phases[Phase.RECEIVING]) or (
                len(self._closing) >= MAX_CLOSING
            ):
                self._changed.wait(0.1)
                return False
            return True

    def _serve_connection(self, connection: socket.socket, address: Any, accepted: float) -> None:
        try:
            NotifyHandler(connection, address, self, accepted)
        except OSError as exc:  # the client went away mid-answer
            logger.info("connection ended: %s", os_error_text(exc))
        except Exception:
            logger.exception("unexpected error serving a notification connection")
        finally:
            with self._changed:
                for connections in self._phases.values():
                    connections.pop(connection, None)
                self._closing.discard(connection)
                self._open -= 1
                self._last_activity = time.monotonic()
                self._changed.notify_all()
            connection.close()

    def _shut_down(self, workers: list[threading.Thread]) -> None:
        """Stop accepting, answer what was received, close idle connections, drain workers."""
        for listener in self.listeners:
            listener.close()  # only our own; systemd's sockets keep their backlog for the next us
        deadline = time.monotonic() + SHUTDOWN_GRACE
        with self._changed:
            while self._open and time.monotonic() < deadline:
                while self._phases[Phase.IDLE]:  # waiting for a next request we will not read
                    self._close_oldest(Phase.IDLE, "stopping")
                self._changed.wait(0.1)
        left = self._drop_queued() if self._stop_requested else 0
        for _ in workers:
            self._work.put(None)
        for worker in workers:
            worker.join()
        self._wake_read.close()
        self._wake_write.close()
        logger.info(
            "notification endpoint exiting (%s)%s",
            self._exit_reason,
            f"; {left} notified runs left QUEUED for the timer" if left else "",
        )

    def _drop_queued(self) -> int:
        """On stop, runs not yet started stay QUEUED in the database; the timer submits them."""
        dropped = 0
        while True:
            try:
                run_id = self._work.get_nowait()
            except queue.Empty:
                return dropped
            if run_id is not None:
                dropped += 1
                with self._changed:
                    self._pending.discard(run_id)

    # --- submission ------------------------------------------------------------------------
    def _work_loop(self) -> None:
        while (run_id := self._work.get()) is not None:
            batch, stop = self._take_more(run_id)
            try:
                self._answers_first()  # the claim is a write transaction: not mid-burst either
                self._submit(batch)
            finally:
                with self._changed:
                    self._pending.difference_update(batch)
                    self._last_activity = time.monotonic()
                    self._changed.notify_all()
            if stop:
                return

    def _take_more(self, first: str) -> tuple[list[str], bool]:
        """Join the runs already waiting to `first` (up to SUBMIT_BATCH); True if a stop
        sentinel was taken, which ends this worker after the batch."""
        batch = [first]
        while len(batch) < SUBMIT_BATCH:
            try:
                item = self._work.get_nowait()
            except queue.Empty:
                break
            if item is None:
                return batch, True
            batch.append(item)
        return batch, False

    def _answers_first(self) -> None:
        """Before each run is submitted, wait for a quiet moment (no request in flight for
        ANSWER_QUIET), at most SUBMIT_HOLD: a submission is CPU-heavy (provider SDK, database)
        and during a burst it would slow the answers the WES API is waiting for. A lone
        notification waits ANSWER_QUIET; a flood still gets a run submitted per SUBMIT_HOLD.
        It polls instead of waiting on the condition, which every request start and end
        notifies: a worker woken for each of them would take the GIL from the answers."""
        deadline = time.monotonic() + SUBMIT_HOLD
        while (now := time.monotonic()) < deadline:
            with self._changed:
                quiet_for = 0.0 if self._phases[Phase.ANSWERING] else now - self._last_answer
            if quiet_for >= ANSWER_QUIET:
                return
            time.sleep(min(ANSWER_QUIET - quiet_for, deadline - now))

    def _submit(self, run_ids: list[str]) -> None:
        runs = ",".join(run_ids)
        try:
            report = submit_runs(self.runtime, run_ids, before_each=self._answers_first)
        except WesctlError as exc:
            logger.warning("runs=%s not submitted, left for the timer: %s", runs, exc.message)
            return
        except Exception:
            logger.exception("runs=%s not submitted (unexpected error), left for the timer", runs)
            return
        for outcome in report.outcomes:
            logger.info(
                "run=%s notification handled: %s%s",
                outcome.run_id,
                outcome.outcome,
                f" ({outcome.reason})" if outcome.reason else "",
            )
