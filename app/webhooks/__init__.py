"""The GitHub webhook edge (verify, record, acknowledge) and the worker that runs the handlers."""
