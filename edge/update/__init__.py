"""A/B updates of the appliance (RAUC): the `edge update` commands."""
