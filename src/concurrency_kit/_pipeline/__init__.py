"""Pipelines: stages joined by bounded queues, each measured and run as a stream (the top layer)."""
