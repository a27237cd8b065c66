"""edge: sensor events in, relay pulses out, the dashboard as a camera."""

__version__ = "0.1.0"

# The root config imports the components' section models, which import Section from it:
# loading edge.config first keeps that cycle in a safe order whatever is imported first.
from . import config as _config  # noqa: E402,F401
