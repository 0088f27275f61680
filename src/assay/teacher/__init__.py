"""The teacher: OpenAI-compatible client, request cache, local llama.cpp server, distill stage."""
