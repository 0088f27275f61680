"""Model-based checks: LLM-as-a-judge, reward model, safety."""
