"""The repository's own build configuration: `scalemesh.json`, or a `vercel.json` or
`netlify.toml` read as one, resolved for the build's target and branch."""
