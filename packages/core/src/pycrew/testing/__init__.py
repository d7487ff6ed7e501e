"""The conformance suite every pycrew launcher must pass (see :mod:`pycrew.testing.suite`)."""
