"""Helpers shared by several test modules: fakes, fixtures and small builders."""
