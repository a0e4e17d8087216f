"""Arvados provider: container requests through arvados-python-client (see adapter.py)."""
