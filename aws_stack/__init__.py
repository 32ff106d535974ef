"""The AWS half as a CDK app: network, database, API service and monitoring constructs."""

import os
from pathlib import Path

# jsii runs on the project-local Node 24 when `npm ci` installed it: faster than the
# machine's Node 20, and without Node 20's end-of-life banner. Set before aws_cdk loads.
_NODE = Path(__file__).resolve().parent.parent / "node_modules" / "node" / "bin" / "node"
if _NODE.exists() and not os.environ.get("JSII_NODE"):
    os.environ["JSII_NODE"] = str(_NODE)
