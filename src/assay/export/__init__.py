"""Choosing among surviving responses and exporting the SFT dataset."""
