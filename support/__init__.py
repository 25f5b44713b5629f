"""Helpers shared by the tests (tests/) and the benchmarks (bench/); never shipped.

payloads: the upstream's fetch answers; stats: figures over samples; servers: loopback
stand-ins served in the caller's event loop; load_servers: the benchmarks' stand-ins,
built to be run in a process of their own under load.
"""
