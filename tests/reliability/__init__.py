"""Reliability: crashes, Redis restarts, delivery semantics, SSRF and secrets, retention."""
