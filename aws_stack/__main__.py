import sys

from aws_stack.app import main

sys.exit(main())
