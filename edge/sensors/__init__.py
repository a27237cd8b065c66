"""Sensors: MQTT ingest with adapters, GPIO and Modbus inputs, the state tracker."""
