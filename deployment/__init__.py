"""Deploying both halves in order: preflight checks, then `make deploy` runs the stacks."""
