"""`python -m notebooks`: see `notebooks.cli`."""

from notebooks.cli import main

raise SystemExit(main())
