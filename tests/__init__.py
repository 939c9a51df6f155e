"""Scale Mesh test suite."""
