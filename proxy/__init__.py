"""The Scale Mesh proxy: serve every deployment at its own hostname."""
