"""Protected previews: who may open a protected deployment, and the project's bypass secret."""
