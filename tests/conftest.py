"""Shared fixtures. Tests run on CPU; multi-device tests spawn subprocesses with fake CPU devices."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
