"""Core stages (collection rules); other capabilities live in their own packages."""
