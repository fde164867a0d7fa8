"""Support code for tests, the lab and benchmarks (never imported by the controller or speaker)."""
