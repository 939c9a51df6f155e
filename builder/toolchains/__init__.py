"""The toolchains a build asks for (Node.js versions, bun), fetched from the npm registry."""
