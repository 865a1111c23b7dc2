"""Scripts and harnesses around the app: benchmarks, and what the tests and benchmarks share."""
