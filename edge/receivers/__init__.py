"""Alarm receivers: SIA DC-09 (alarm receiving centres, Home Assistant), CHEKT bridges, signed
webhooks. Reports go through the store's outbox, in order, until each receiver took them."""
