"""Demo mode (`tickwire serve --demo`): a simulated market, paper trading, bots and a page.

Everything here runs on the public tickwire APIs only (`create_app` hooks and
`Node.publish`), so it doubles as an example of an application built on tickwire.
"""

from tickwire.demo.app import create_demo_app

__all__ = ["create_demo_app"]
