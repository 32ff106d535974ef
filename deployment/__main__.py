"""`python -m deployment plan|deploy|destroy --env <name>` (see deployment.system)."""

import sys

from deployment.system import main

sys.exit(main())
