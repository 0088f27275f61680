"""The HTML report and the local data browser."""
