"""Model registry: versions, aliases, audit log, rollback."""
