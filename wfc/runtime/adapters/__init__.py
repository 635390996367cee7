"""Adapters for the runtime's ports: `memory` (tests, `wfc.testing`) and `sql` (SQLite, PostgreSQL)."""
