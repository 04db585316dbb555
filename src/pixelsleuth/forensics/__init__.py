"""Forensic analyses of the pixels themselves, as pure functions on arrays (no learned weights)."""
