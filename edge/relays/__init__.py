"""Relays: the relay service (ctx.extras["relays"]), its config section, HTTP API and CLI."""

from .. import config as _config  # noqa: F401 - load edge.config first: it imports our section

from .service import CommandResult, RelayInfo, RelayService  # noqa: E402

__all__ = ["CommandResult", "RelayInfo", "RelayService"]
