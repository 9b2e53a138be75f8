"""The workspace: the composition root that turns settings into stores and directories."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conveyor.config import Settings
from conveyor.core.errors import NotFoundError
from conveyor.store.factory import Stores, open_stores


@dataclass(slots=True)
class Workspace:
    """Where the line keeps its state: a metadata database, an artifact store and local logs.

    Open it with :meth:`open`; migrations are applied on open, so several processes may open a new
    workspace at once.

    Examples
    --------
    >>> import tempfile
    >>> ws = Workspace.open(Settings(home=Path(tempfile.mkdtemp())))
    >>> ws.stores.datasets.list_dataset_versions("demo")
    []
    """

    settings: Settings
    stores: Stores
    home: Path
    _models: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def open(cls, settings: Settings | None = None) -> Workspace:
        settings = settings or Settings()
        home = settings.resolved_home()
        home.mkdir(parents=True, exist_ok=True)
        stores = open_stores(
            settings.resolved_db_url(),
            settings.resolved_artifacts(),
            tracking_uri=settings.tracking_uri,
            token=settings.token.get_secret_value() if settings.token else None,
            run_stale_after_s=settings.run_stale_after_s,
        )
        return cls(settings=settings, stores=stores, home=home)

    @classmethod
    def open_existing(cls, settings: Settings | None = None) -> Workspace:
        """Open a workspace that exists already; never create one (for commands that only read).

        A workspace exists when its metadata database does: the SQLite file (``conveyor.db``
        under ``home`` by default), or any server database named by ``db_url``.

        Raises
        ------
        NotFoundError
            If the SQLite database does not exist; the message names the directory and file
            looked at. Nothing is created.

        Examples
        --------
        >>> import tempfile
        >>> Workspace.open_existing(Settings(home=Path(tempfile.mkdtemp()) / "none"))
        Traceback (most recent call last):
        ...
        conveyor.core.errors.NotFoundError: No Conveyor workspace at '...none': ...
        """
        settings = settings or Settings()
        database = settings.sqlite_file()
        if database is not None and not database.is_file():
            home = settings.resolved_home()
            raise NotFoundError(
                f"No Conveyor workspace at '{home}': its metadata database '{database}' does "
                "not exist. Point --home (CONVEYOR_HOME, Settings.home; default ./.conveyor) "
                "at an existing workspace, or create one with a command that writes, such as "
                "`conveyor ingest`."
            )
        return cls.open(settings)

    def project_dir(self, project: str, kind: str) -> Path:
        """A local directory of ``project`` for ``kind`` ('predictions', 'feedback', 'reports')."""
        path = self.home / "projects" / project / kind
        path.mkdir(parents=True, exist_ok=True)
        return path

    def cached_model(self, digest: str) -> Any | None:
        """A model already loaded from the artifact ``digest`` in this process, if any."""
        return self._models.get(digest)

    def cache_model(self, digest: str, model: Any) -> None:
        if len(self._models) >= 16:
            self._models.pop(next(iter(self._models)))
        self._models[digest] = model

    @property
    def actor(self) -> str:
        return self.settings.actor

    def env(self) -> dict[str, str]:
        """Environment variables that let a child process open this same workspace."""
        env = dict(os.environ)
        env["CONVEYOR_HOME"] = str(self.home)
        env["CONVEYOR_DB_URL"] = self.settings.resolved_db_url()
        env["CONVEYOR_ARTIFACTS"] = self.settings.resolved_artifacts()
        if self.settings.tracking_uri:
            env["CONVEYOR_TRACKING_URI"] = self.settings.tracking_uri
        return env
