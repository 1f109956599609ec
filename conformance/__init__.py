"""Conformance suites that vendors run against their own devices and servers (see the conformance issue)."""
