"""A tickwire node and its components (see node.py for how they fit together)."""

from tickwire.node.node import Node, make_broker

__all__ = ["Node", "make_broker"]
