"""Execution engines beyond the local one (Ray)."""
