"""Plain helpers shared by test folders (no fixtures: those live in tests/fixtures/)."""
