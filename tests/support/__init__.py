"""Helpers the test modules share: servers, ports, waiters, fakes, fixtures' building blocks.

Test modules import from here, never from each other; `tests/conftest.py` keeps the fixtures.
"""
