"""The runner: run directory, shards, resume, engines and stats."""
