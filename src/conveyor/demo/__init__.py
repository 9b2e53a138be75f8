"""The flights demo: 2013 replayed through the whole line."""
