"""The shared helpers' own pure parts (support/)."""
