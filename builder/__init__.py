"""The Scale Mesh builder: clone, install, build and upload one commit."""
