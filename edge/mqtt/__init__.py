"""The broker connection shared by ingest, uplink and the demo's simulator: its config section
(``config``) and the client helpers (``client``)."""
