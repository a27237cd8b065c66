"""edge: sensor events in, relay pulses out, the dashboard as a camera."""

__version__ = "0.1.0"
