"""The platform REST API (FastAPI): tracking and the model registry; see :mod:`.app`."""
