"""Interop tests: real Go memberlist members (tests/interop/mlnode, built by `make install`) next to ours."""
