"""The GCP half as data, and a small plan/apply engine over Google's REST APIs.

Deployment Manager reached end of support on 2026-03-31; this keeps its good idea (a
deployment is a list of typed resources with names, properties and dependencies) and
applies it through google-api-python-client, one service API at a time.
"""
