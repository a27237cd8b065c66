"""ONVIF for NVRs: WS-Discovery, the SOAP layer with WS-Security, and the Device, Media (ver10),
Events (PullPoint) and DeviceIO services, all on the shared aiohttp server.

Kept import-light: ``edge.config`` imports ``edge.onvif.config`` while it is being built.
"""
