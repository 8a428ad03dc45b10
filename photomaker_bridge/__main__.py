"""``python -m photomaker_bridge``: the same CLI as ``photomaker-bridge``."""

from .cli import main

raise SystemExit(main())
