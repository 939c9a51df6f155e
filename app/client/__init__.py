"""The `scalemesh` client commands: sign in to an API, manage projects, deploy and follow logs.

They talk to a Scale Mesh API over HTTP, and to its log websocket (the protocol is described in
`app/logstream.py`). `scalemesh login` saves the API's URL and a session token in a config file
only its owner can read; every other command reads it. A failure is one line on stderr and exit
code 1 (raised here as `ClientError`, printed by `app.cli.main`).

The parts: `config` (the config file), `api` (HTTP), `follow` (the log websocket),
`repository` (the project building the repository here) and `commands` (the commands and their
arguments).
"""

from __future__ import annotations


class ClientError(Exception):
    """The command cannot go on; the message says why and what to do, in one line."""
