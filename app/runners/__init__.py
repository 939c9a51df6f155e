"""Build runners: start `python -m builder` somewhere, watch it, and stop it."""
