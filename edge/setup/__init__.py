"""The front panel: a character LCD and four buttons (first-boot credentials, network, relays,
sensors, alarms, reboot, factory reset).

- ``menu``: the menu as a pure state machine (the screen stack, alarm interrupts, the queue
  of actions, what is on screen when); ``widgets``: reusable screens; ``screens``: this
  panel's screens; ``views``: the data they read; ``actions``: what they ask for; ``text``:
  lines for the LCD (sensor words from ``edge.kinds``).
- ``component``: the supervised component running the menu on the LCD and buttons;
  ``feed``: keeps the menu's data current from the bus and the registry; ``handlers``: one
  handler per action; ``routes``: /api/lcd, /api/buttons/{name}, /panel; ``network``:
  addressing changes with roll-back; ``watch``: credentials rotated outside the service.
"""
