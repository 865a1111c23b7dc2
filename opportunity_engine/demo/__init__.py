"""The synthetic demo trust: a deterministic generator of activity, reference data and example schemes.

The top wing: it uses every other wing to build a database a new user can explore; nothing imports it but the
CLI, the benchmark and the tests.
"""
