"""Settings: where the workspace lives and who is acting. Built once at the edge, passed down."""

from __future__ import annotations

import getpass
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_actor() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


class Settings(BaseSettings):
    """Workspace settings; precedence: defaults < ``CONVEYOR_*`` environment < explicit arguments.

    Examples
    --------
    >>> Settings(home=Path("/tmp/ws")).resolved_db_url()
    'sqlite:////tmp/ws/conveyor.db'
    """

    model_config = SettingsConfigDict(env_prefix="CONVEYOR_", extra="ignore")

    home: Path = Field(
        default=Path(".conveyor"), description="Directory for the embedded defaults and logs."
    )
    db_url: str | None = Field(
        default=None, description="Metadata database URL; default SQLite under `home`."
    )
    artifacts: str | None = Field(
        default=None,
        description="Artifact root URL (local path, file://, s3://); default under `home`.",
    )
    actor: str = Field(
        default_factory=_default_actor, description="Who is acting, for audit events."
    )
    token: SecretStr | None = Field(
        default=None, description="Bearer token that write routes of the servers require."
    )
    require_approval: bool = Field(
        default=False,
        description=(
            "A `conveyor server` makes a version production only if it is approved, whatever "
            "the client's project says (a client's `registry.require_approval` adds to it)."
        ),
    )
    tracking_uri: str | None = Field(
        default=None,
        description=(
            "URL of a `conveyor server` (http://host:port); when set, runs and the model "
            "registry live there and go over HTTP, other stores stay local."
        ),
    )

    run_heartbeat_s: float = Field(
        default=10.0,
        gt=0,
        description="Seconds between the heartbeats a tracked run's client sends while it runs.",
    )
    run_stale_after_s: float = Field(
        default=300.0,
        gt=0,
        description=(
            "Seconds without a heartbeat after which a running run is ended `failed` (its "
            "client died); checked when runs are read. Keep it well above `run_heartbeat_s`."
        ),
    )

    def resolved_home(self) -> Path:
        return self.home.expanduser().resolve()

    def resolved_db_url(self) -> str:
        return self.db_url or f"sqlite:///{self.resolved_home() / 'conveyor.db'}"

    def resolved_artifacts(self) -> str:
        return self.artifacts or str(self.resolved_home() / "artifacts")

    def sqlite_file(self) -> Path | None:
        """The file of the metadata database when it is an SQLite file, else ``None``.

        Examples
        --------
        >>> Settings(home=Path("/tmp/ws")).sqlite_file()
        PosixPath('/tmp/ws/conveyor.db')
        >>> Settings(db_url="postgresql+psycopg://db/conveyor").sqlite_file() is None
        True
        """
        url = self.resolved_db_url()
        prefix = "sqlite:///"
        if not url.startswith(prefix):
            return None
        path = url[len(prefix) :].split("?", 1)[0]
        return None if path in ("", ":memory:") else Path(path).expanduser().resolve()
