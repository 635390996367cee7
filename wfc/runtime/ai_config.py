"""`AIConfig`: the config fields of a model-calling stage, for workflows built in Python.

It is what the language's `ai "model", temperature …, max tokens …` preset adds
to a stage's config; subclass it to change the defaults or add fields.
"""

from __future__ import annotations

from pydantic import BaseModel, Field


class AIConfig(BaseModel):
    """Model key, sampling temperature and output budget, overridable per run."""

    model: str = Field(default="test", description="Model key (from the registry).")
    temperature: float = Field(default=0.7, ge=0.0, le=2.0, description="Sampling temperature.")
    max_tokens: int = Field(default=1024, ge=1, description="Most tokens to generate.")
