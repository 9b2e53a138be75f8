"""Time and identifiers: aware UTC datetimes and sortable random ids."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime


def utcnow() -> datetime:
    """Return the current time as an aware UTC datetime."""
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """Return ``value`` as an aware UTC datetime (naive values are taken to be UTC)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def new_id(prefix: str = "") -> str:
    """Return a new id: 48-bit millisecond time + 80 random bits, hex, sortable by creation."""
    ms = int(time.time() * 1000)
    body = f"{ms:012x}{os.urandom(10).hex()}"
    return f"{prefix}{body}" if prefix else body
