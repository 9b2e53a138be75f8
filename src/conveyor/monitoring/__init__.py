"""Monitoring: drift, bias, live performance, alerts."""
