"""Scale Mesh: the API, the GitHub App and the web dashboard."""
