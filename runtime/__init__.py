"""skybridge runtime: the code that runs in the clouds (API, relay, function handlers)."""
