"""Continuous training: triggers, the gate step, the controller, the post-release watch."""
