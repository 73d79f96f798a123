"""Serves sanctions lists in their official published formats, for tests and `make run`."""
