"""The AWS half as a CDK app: network, database, API service and monitoring constructs."""
