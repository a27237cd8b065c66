"""Hardware drivers, each behind a small interface with a simulated twin."""
