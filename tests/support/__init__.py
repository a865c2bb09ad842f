"""Test support: real servers on free ports and small real-socket clients."""
