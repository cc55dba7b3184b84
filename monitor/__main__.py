"""`python -m monitor` is the same as the `support-monitor` command."""

from monitor.cli import main

raise SystemExit(main())
