"""A running build's line to the API: bootstrap tokens, its spec, its log, its upload grant.

`tokens` issues and checks the one secret a builder holds; `specs` makes a build's spec;
`grants` hands out upload credentials scoped to one deployment; `ingest` reads a batch of log
events; `service` is what the builder's two endpoints (`routes`) call.
"""
