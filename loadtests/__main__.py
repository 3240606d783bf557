"""`python -m loadtests`: see `loadtests.cli`."""

import sys

from loadtests.cli import main

if __name__ == "__main__":
    sys.exit(main())
