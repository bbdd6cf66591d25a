"""Synthetic well-log page renderer."""
