"""Trading domain logic (positions, P&L, alerts): pure Python, no I/O."""
