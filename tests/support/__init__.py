"""Test infrastructure that several test folders share: servers a test starts for itself,
waits on a condition, the worker processes of a server, a run replayed over HTTP.

Tests import these from here, never from bench; bench may import them (its benchmarks start
the same servers)."""
