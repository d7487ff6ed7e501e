"""pytest plugin of pycrew: fixtures for launcher authors (registered through pytest11)."""
