"""The kit for both sides: the Python client, the receiver kit, the TypeScript example."""
