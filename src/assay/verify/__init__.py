"""Verify-based checks: math answer verification and code run in a sandbox."""
