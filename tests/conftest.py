"""Test setup: 8 fake CPU devices for sharding tests (before JAX initialises)."""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("JAX_PLATFORMS", "cpu")


def pytest_configure(config):
  config.addinivalue_line("markers", "slow: minutes-long end-to-end tests (`make test-slow`)")
