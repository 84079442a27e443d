"""Test support: live servers and external services started by the tests."""
