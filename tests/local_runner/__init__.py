"""The local build runner against a fake builder (`tests/fixtures/fake_builder.py`).

Each build is a real process group: the tests check what reaches the log bus, what the
builder's environment holds, and that cancelling or closing leaves no process behind.
"""
