"""Provider batch exchanges, recorded as the APIs send them, served by mock HTTP transports.

Each `*_exchange` returns an `(handler, calls)` pair: the handler answers the SDK's
requests by method and path, and `calls` records what the SDK sent, so tests can
assert on the submitted payloads too. Shapes follow the providers' API references:
OpenAI Batch + Files, Anthropic Message Batches, Gemini batch jobs.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

Handler = Callable[[Any], Any]

OPENAI_BATCH = {
    "object": "batch",
    "endpoint": "/v1/chat/completions",
    "input_file_id": "file-in",
    "completion_window": "24h",
    "created_at": 1764000000,
    "request_counts": {"total": 3, "completed": 2, "failed": 1},
}


def openai_exchange(response_type: Any) -> tuple[Handler, list[tuple[str, str, bytes]]]:
    """OpenAI: `batch_ok` completes (two results, one error line); `batch_expired`, `batch_failed`."""
    calls: list[tuple[str, str, bytes]] = []
    polls = {"batch_ok": 0}

    def handle(request: Any) -> Any:
        path, method = request.url.path, request.method
        calls.append((method, path, request.read()))
        if (method, path) == ("POST", "/v1/files"):
            return response_type(
                200,
                json={
                    "id": "file-in",
                    "object": "file",
                    "bytes": 512,
                    "created_at": 1764000000,
                    "filename": "batch.jsonl",
                    "purpose": "batch",
                    "status": "processed",
                },
            )
        if (method, path) == ("POST", "/v1/batches"):
            return response_type(
                200, json={**OPENAI_BATCH, "id": "batch_ok", "status": "validating"}
            )
        if path == "/v1/batches/batch_ok":
            polls["batch_ok"] += 1
            if polls["batch_ok"] == 1:
                return response_type(
                    200, json={**OPENAI_BATCH, "id": "batch_ok", "status": "in_progress"}
                )
            return response_type(
                200,
                json={
                    **OPENAI_BATCH,
                    "id": "batch_ok",
                    "status": "completed",
                    "output_file_id": "file-out",
                    "error_file_id": "file-err",
                },
            )
        if path == "/v1/batches/batch_expired":
            return response_type(
                200, json={**OPENAI_BATCH, "id": "batch_expired", "status": "expired"}
            )
        if path == "/v1/batches/batch_failed":
            return response_type(
                200,
                json={
                    **OPENAI_BATCH,
                    "id": "batch_failed",
                    "status": "failed",
                    "errors": {
                        "object": "list",
                        "data": [
                            {"code": "invalid_model", "message": "model not found", "line": 1},
                        ],
                    },
                },
            )
        if path == "/v1/files/file-out/content":
            lines = [
                {
                    "id": "r1",
                    "custom_id": "a",
                    "error": None,
                    "response": {
                        "status_code": 200,
                        "body": {
                            "choices": [
                                {
                                    "index": 0,
                                    "message": {
                                        "role": "assistant",
                                        "content": '```json\n{"label": "positive"}\n```',
                                    },
                                }
                            ],
                            "usage": {
                                "prompt_tokens": 100,
                                "completion_tokens": 20,
                                "total_tokens": 120,
                            },
                        },
                    },
                },
                {
                    "id": "r2",
                    "custom_id": "b",
                    "error": None,
                    "response": {
                        "status_code": 200,
                        "body": {
                            "choices": [
                                {
                                    "index": 0,
                                    "message": {"role": "assistant", "content": '{"label": 7}'},
                                }
                            ],
                            "usage": {
                                "prompt_tokens": 90,
                                "completion_tokens": 10,
                                "total_tokens": 100,
                            },
                        },
                    },
                },
            ]
            return response_type(
                200, content="\n".join(json.dumps(line) for line in lines).encode()
            )
        if path == "/v1/files/file-err/content":
            line = {
                "id": "r3",
                "custom_id": "c",
                "response": None,
                "error": {"code": "rate_limit", "message": "too many tokens"},
            }
            return response_type(200, content=json.dumps(line).encode())
        return response_type(404, json={"error": {"message": f"unexpected {method} {path}"}})

    return handle, calls


ANTHROPIC_BATCH = {
    "type": "message_batch",
    "created_at": "2026-11-23T00:00:00Z",
    "expires_at": "2026-11-24T00:00:00Z",
    "archived_at": None,
    "cancel_initiated_at": None,
    "ended_at": None,
    "results_url": None,
}


def _counts(
    processing: int = 0, succeeded: int = 0, errored: int = 0, expired: int = 0
) -> dict[str, int]:
    return {
        "processing": processing,
        "succeeded": succeeded,
        "errored": errored,
        "canceled": 0,
        "expired": expired,
    }


def anthropic_exchange(response_type: Any) -> tuple[Handler, list[tuple[str, str, bytes]]]:
    """Anthropic: `msgbatch_ok` ends (one success, one error); `msgbatch_expired` expires."""
    calls: list[tuple[str, str, bytes]] = []
    base = "https://api.anthropic.com"

    def handle(request: Any) -> Any:
        path, method = request.url.path, request.method
        calls.append((method, path, request.read()))
        if (method, path) == ("POST", "/v1/messages/batches"):
            return response_type(
                200,
                json={
                    **ANTHROPIC_BATCH,
                    "id": "msgbatch_ok",
                    "processing_status": "in_progress",
                    "request_counts": _counts(processing=2),
                },
            )
        if path == "/v1/messages/batches/msgbatch_ok":
            return response_type(
                200,
                json={
                    **ANTHROPIC_BATCH,
                    "id": "msgbatch_ok",
                    "processing_status": "ended",
                    "ended_at": "2026-11-23T01:00:00Z",
                    "results_url": f"{base}/v1/messages/batches/msgbatch_ok/results",
                    "request_counts": _counts(succeeded=1, errored=1),
                },
            )
        if path == "/v1/messages/batches/msgbatch_expired":
            return response_type(
                200,
                json={
                    **ANTHROPIC_BATCH,
                    "id": "msgbatch_expired",
                    "processing_status": "ended",
                    "results_url": f"{base}/v1/messages/batches/msgbatch_expired/results",
                    "request_counts": _counts(expired=2),
                },
            )
        if path == "/v1/messages/batches/msgbatch_ok/results":
            lines = [
                {
                    "custom_id": "a",
                    "result": {
                        "type": "succeeded",
                        "message": {
                            "id": "msg_1",
                            "type": "message",
                            "role": "assistant",
                            "model": "claude-haiku-4-5",
                            "content": [{"type": "text", "text": '{"label": "negative"}'}],
                            "stop_reason": "end_turn",
                            "stop_sequence": None,
                            "usage": {"input_tokens": 80, "output_tokens": 12},
                        },
                    },
                },
                {
                    "custom_id": "b",
                    "result": {
                        "type": "errored",
                        "error": {
                            "type": "error",
                            "error": {
                                "type": "invalid_request_error",
                                "message": "prompt is too long",
                            },
                        },
                    },
                },
            ]
            return response_type(
                200,
                content="\n".join(json.dumps(line) for line in lines).encode(),
                headers={"content-type": "application/x-jsonl"},
            )
        return response_type(
            404,
            json={
                "type": "error",
                "error": {"type": "not_found_error", "message": f"unexpected {method} {path}"},
            },
        )

    return handle, calls


def google_exchange(response_type: Any) -> tuple[Handler, list[tuple[str, str, bytes]]]:
    """Gemini: `batches/ok` succeeds (one response, one error); `batches/expired`, `batches/failed`."""
    calls: list[tuple[str, str, bytes]] = []

    def job(name: str, state: str, **extra: Any) -> dict[str, Any]:
        return {
            "name": name,
            "metadata": {
                "@type": "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatch",
                "name": name,
                "model": "models/gemini-2.5-flash",
                "state": state,
                **extra,
            },
        }

    def handle(request: Any) -> Any:
        path, method = request.url.path, request.method
        calls.append((method, path, request.read()))
        if method == "POST" and path.endswith(":batchGenerateContent"):
            return response_type(200, json=job("batches/ok", "BATCH_STATE_PENDING"))
        if path.endswith("/batches/ok"):
            return response_type(
                200,
                json=job(
                    "batches/ok",
                    "BATCH_STATE_SUCCEEDED",
                    output={
                        "inlinedResponses": {
                            "inlinedResponses": [
                                {
                                    "response": {
                                        "candidates": [
                                            {
                                                "content": {
                                                    "role": "model",
                                                    "parts": [{"text": '{"label": "neutral"}'}],
                                                }
                                            }
                                        ],
                                        "usageMetadata": {
                                            "promptTokenCount": 70,
                                            "candidatesTokenCount": 9,
                                            "totalTokenCount": 79,
                                        },
                                    },
                                    "metadata": {"request_id": "a"},
                                },
                                {
                                    "error": {"code": 400, "message": "safety block"},
                                    "metadata": {"request_id": "b"},
                                },
                            ]
                        },
                    },
                ),
            )
        if path.endswith("/batches/expired"):
            return response_type(200, json=job("batches/expired", "BATCH_STATE_EXPIRED"))
        if path.endswith("/batches/failed"):
            return response_type(200, json=job("batches/failed", "BATCH_STATE_FAILED"))
        return response_type(
            404, json={"error": {"code": 404, "message": f"unexpected {method} {path}"}}
        )

    return handle, calls
