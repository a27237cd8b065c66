"""YoLink as a source of its own: the API client (tokens, home, devices) and the MQTT session."""
