"""Accounts: sign-up, passwords, sessions and failed sign-in throttling."""
