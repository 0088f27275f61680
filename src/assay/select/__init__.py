"""Labels and selection: language, difficulty / quality / category labels, select rules and quotas."""
