"""`python -m wfc` is the `wfc` command."""

from __future__ import annotations

from wfc.cli import main

main()
