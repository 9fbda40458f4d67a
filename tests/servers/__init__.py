"""Loopback servers that stand in for remote services in tests and benchmarks."""
