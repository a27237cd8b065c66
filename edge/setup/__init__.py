"""The front panel: LCD + buttons menu, first-boot credentials, network, factory reset."""
