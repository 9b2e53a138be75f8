"""The conveyor command."""
