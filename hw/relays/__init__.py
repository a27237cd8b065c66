"""Relay boards behind one small interface (``RelayBoard``): GPIO (gpiozero), Modbus RTU over
RS485 and Modbus TCP (pymodbus) driven by the profiles in hw/boards/, a simulated board that
is a real Modbus server (sim.py), and an in-memory board without the wire (memory.py) for
tests of the code above the seam."""

from .base import BoardError, RelayBoard
from .profiles import BoardProfile, ProfileError, get_profile, load_profiles

__all__ = ["BoardError", "BoardProfile", "ProfileError", "RelayBoard", "get_profile", "load_profiles"]
