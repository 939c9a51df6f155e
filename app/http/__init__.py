"""The HTTP edge's shared plumbing: who is calling, and how errors become answers."""
