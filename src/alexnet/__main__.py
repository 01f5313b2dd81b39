"""`python -m alexnet ...`, as torchrun launches it."""

from alexnet.cli import main

raise SystemExit(main())
