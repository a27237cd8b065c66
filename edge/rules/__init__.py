"""Rules: sensor conditions -> relay actions and alarms. ``config`` holds the ``[[rules]]``
section (light: check-config loads only it), ``engine.RulesEngine`` the component."""
