"""State out: sensor states and events through the outbox, HA discovery, commands in."""
