"""Tests of the verifier core: token rules, keys, sessions, configuration."""
