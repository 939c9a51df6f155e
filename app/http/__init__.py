"""The HTTP edge's shared plumbing: how errors become answers, and the OpenAPI document."""
