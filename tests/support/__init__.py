"""Helpers shared by the test modules (instead of test modules importing each other)."""
