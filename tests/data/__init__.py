# A package, so that tests/data/conftest.py imports as data.conftest and leaves the
# top-level name `conftest` (from conftest import ...) to tests/conftest.py.
