"""Heartbeats of running runs, so a run whose client died does not stay ``running`` forever.

While a run is active, a :class:`RunHeartbeat` daemon thread calls ``RunStore.heartbeat``
every ``Settings.run_heartbeat_s``. The process ending in any way stops the thread: a normal
end ends the run itself, and after a hard kill (``SIGKILL``, the OOM killer, a lost machine)
the heartbeats stop, so the store ends the run ``failed`` once ``Settings.run_stale_after_s``
have passed without one (see :class:`conveyor.store.sql.run_store.SqlRunStore`; over HTTP the
server's store does it). MLflow leaves such runs ``RUNNING`` for good; this is the fix.
"""

from __future__ import annotations

import logging
import threading

from conveyor.core.entities import RunId
from conveyor.core.errors import ConflictError, ConveyorError
from conveyor.store.base import RunStore

_log = logging.getLogger(__name__)


class RunHeartbeat:
    """A daemon thread that heartbeats one run every ``interval_s`` until :meth:`stop`.

    A failed heartbeat is logged and retried on the next tick; a run that has ended (the
    store gave up on it) stops the thread.

    Parameters
    ----------
    store : RunStore
        Where the run lives.
    run_id : RunId
        The run.
    interval_s : float
        Seconds between heartbeats.
    """

    def __init__(self, store: RunStore, run_id: RunId, interval_s: float) -> None:
        self.store = store
        self.run_id = run_id
        self.interval_s = interval_s
        self._stopped = threading.Event()
        self._thread = threading.Thread(
            target=self._loop, name=f"conveyor-heartbeat-{run_id}", daemon=True
        )

    def start(self) -> RunHeartbeat:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the heartbeats (idempotent); the run's end is written by its owner."""
        self._stopped.set()

    def _loop(self) -> None:
        while not self._stopped.wait(self.interval_s):
            try:
                self.store.heartbeat(self.run_id)
            except ConflictError as exc:
                if not self._stopped.is_set():  # else its owner ended it meanwhile: fine
                    _log.error("Run %s stopped taking heartbeats: %s", self.run_id, exc)
                return
            except ConveyorError as exc:
                _log.warning("Heartbeat of run %s failed, will retry: %s", self.run_id, exc)
