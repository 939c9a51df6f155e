"""Helpers shared by several test modules: fakes, servers, waiters, fixtures and builders."""
