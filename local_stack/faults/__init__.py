"""Fault injection for the fault tests: stand-ins that fail on purpose, never deployed."""
