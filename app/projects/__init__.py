"""Projects: what to build and how, who may see them, and their sealed env vars."""
