"""End-to-end check of a running skybridge: post submissions, follow them, compare objects.

The same check runs against the local stack (`make demo`, `make test`) and against a
deployed environment (`make smoke ENV=<name>`).
"""
