"""Signing in with GitHub, and the GitHub user tokens it leaves behind."""
