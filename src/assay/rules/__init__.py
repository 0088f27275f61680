"""Rule-based rejection: n-gram repetition, length, format, truncation, language and answer consistency."""
