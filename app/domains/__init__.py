"""Custom domains: a project's own hostnames, proven by DNS, following its production (or a
branch's) alias; `service.py` is what the API and the dashboard call, `rechecks.py` what the
reconcile loop runs."""
