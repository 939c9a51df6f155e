"""Build logs: an ordered, append-only log per deployment, with a live tail (DESIGN §8)."""
