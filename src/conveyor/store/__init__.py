"""Ports and adapters for metadata and artifacts."""
