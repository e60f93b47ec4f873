"""What the tests share: helpers, paths and servers, never a test.

The test folders import from here (`from support.paths import COUNTER`), and
nothing here imports a test module, so every test module stands on its own.
pyproject.toml's `pythonpath = ["tests"]` makes this package importable.
"""
