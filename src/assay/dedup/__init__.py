"""Dedup and decontamination: exact, MinHash, semantic (embeddings + FAISS)."""
