"""The two Cloud Functions: `ingest` (HTTP → Pub/Sub) and `store` (Pub/Sub → Cloud Storage).

Each module is a thin functions-framework handler over pure logic; clients are created
lazily, once per instance, so a cold start pays only for what the first request uses.
"""
