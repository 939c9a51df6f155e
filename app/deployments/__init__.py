"""Deployments: queueing commits, the build lifecycle, publishing aliases, and reading them."""
