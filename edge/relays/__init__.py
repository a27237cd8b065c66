"""Relays: the relay service (provided as ``interfaces.RELAYS``), its config section, HTTP API
and CLI. Kept import-light: the config imports ``edge.relays.config``."""
