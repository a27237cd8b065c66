"""Relays: named relay channels on boards, driven through ``interfaces.RelayControl``.

One job per module:

- ``service.py``: the component and the ``RelayControl`` facade (provided as
  ``interfaces.RELAYS``): lifecycle, command checks, results; it wires the parts below.
- ``channel.py``: one channel's rules (lock, pulse/follow/latch, re-trigger, "every pulse
  ends", faulted), on any ``hw.relays`` board, with no bus, store or metrics.
- ``monitor.py``: one board's health (poll loop, reachable/unreachable, safe state at first
  contact, re-assertion).
- ``boards.py``: building a board from its config, a table by board type, on ``ctx.platform``.
- ``audit.py``: the audit rows, metrics and log line every command leaves.
- ``api.py``: the HTTP routes; ``cli.py``: ``edge relay ...`` over that API. Both know only
  ``interfaces.RelayControl`` (the CLI not even that: it speaks HTTP).
- ``config.py``: the ``[relays]`` section.

Kept import-light: the config imports ``edge.relays.config``.
"""
