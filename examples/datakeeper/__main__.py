"""python -m examples.datakeeper: the same as bin/datakeeper."""

import sys

from examples.datakeeper.main import main

sys.exit(main())
