"""Helpers shared by the test modules: fakes, servers, waiters, fixtures."""
