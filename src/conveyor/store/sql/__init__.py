"""SQLAlchemy adapters of the metadata ports: SQLite and PostgreSQL, migrated by Alembic."""
