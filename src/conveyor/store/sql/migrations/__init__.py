"""Alembic migrations of the metadata database, applied by ``Database.upgrade()``."""
