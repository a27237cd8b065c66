"""The web console: the pages an installer runs the site from, on a phone or a laptop.

Server-rendered (Jinja2 templates, loaded at the first page, in ``templates/``, the vendored htmx in
``static/``), live over Server-Sent Events from the bus (``live.py``), behind a browser
login with CSRF tokens (``session.py``). It reaches the rest of edge only through the bus and
the registry (``edge.interfaces``): relays, sensors, alarms, history, video, and the service
itself (status, applying an edited config). Config edits go through ``configedit.py``.
"""
