"""The deployment lifecycle through the API and the reconcile loop, with a scripted runner.

The runner is a fake that does what a builder would (log events, upload a manifest) when told
to, so every path of the loop can be driven pass by pass; `tests/test_pipeline.py` runs the real
builder end to end.
"""
