"""LocalStack provider plugins for the Vitals project (see providers.py)."""
