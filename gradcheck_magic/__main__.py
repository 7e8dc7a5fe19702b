"""``python -m gradcheck_magic NOTEBOOK...``: the headless notebook checker."""

from .notebook_cli import main

raise SystemExit(main())
