"""What several test modules share that cannot be a fixture: classes and values used at collection time
(parametrize arguments). Fixtures live in the conftest.py files; no test module imports another."""
