"""A stand-in for the CDK CLI (test_system.py puts it on a shebang line): records its argv
in $FAKE_CDK_LOG and answers as cdk 2.1148 does, from diff.txt and events.txt."""

import json
import os
import sys
from pathlib import Path

argv = sys.argv[1:]
with open(os.environ["FAKE_CDK_LOG"], "a") as log:
    log.write(json.dumps(argv) + "\n")
env = next(a.split("=", 1)[1] for a in argv if a.startswith("env="))
stack = f"skybridge-{env}"
command = argv[0]
if command == "diff":  # cdk writes the diff to stderr
    print(Path(os.environ["FAKE_CDK_DIFF"]).read_text().format(env=env), file=sys.stderr)
elif command == "list":
    print(stack)
elif command == "deploy":
    print(Path(os.environ["FAKE_CDK_EVENTS"]).read_text().format(env=env))
    path = argv[argv.index("--outputs-file") + 1]
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as out:
        json.dump({stack: {"ApiUrl": "http://api.example.com"}}, out)
elif command == "destroy":
    print(f"{stack}: destroying... [1/1]")
    for line in (
        "0/2 | 3:00:00 PM | DELETE_IN_PROGRESS | AWS::SNS::Topic | AlarmTopic (AlarmTopicD01E77F9)",
        "1/2 | 3:00:04 PM | DELETE_COMPLETE | AWS::SNS::Topic | AlarmTopic (AlarmTopicD01E77F9)",
    ):
        print(f"{stack} | {line}")
    print(f" ✅  {stack}: destroyed")
