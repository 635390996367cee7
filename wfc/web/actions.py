"""Who may act, and the two actions: cancel a run, rerun it from a stage.

The dashboard is read-only unless it was started to allow actions: with
`--allow-actions`, or with a token (`WFC_UI_TOKEN`) that every action request
must carry, as a bearer header, an `X-WFC-Token` header, or the cookie the
dashboard sets once opened with `?token=…`. A browser on another site can post
to a dashboard on 127.0.0.1 too, so an action is also refused when its
`Origin` is not the dashboard's own host, and when the `Host` asked for is not
one the dashboard answers to (a DNS-rebinding page names its own host there).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from urllib.parse import urlsplit

from starlette.requests import Request

from wfc.errors import WfcError
from wfc.runtime.commands import RunCancel, RunRerunFrom
from wfc.runtime.kernel import Kernel

TOKEN_COOKIE = "wfc_ui_token"
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcome:
    """What an action did, as the page says it: ok or not, and one line."""

    ok: bool
    message: str
    status_code: int = 200


def _token_of(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return request.headers.get("x-wfc-token") or request.cookies.get(TOKEN_COOKIE)


def host_allowed(request: Request, bound_host: str) -> bool:
    """Whether the request names a host this dashboard answers to: any when it listens on
    every interface, else the one it is bound to, or a loopback name when that is one."""
    if bound_host in ("0.0.0.0", "::", ""):
        return True
    asked = (request.url.hostname or "").lower()
    allowed = {bound_host.lower()} | (LOOPBACK if bound_host in LOOPBACK else set())
    return asked in allowed


def refusal(
    request: Request, *, allow_actions: bool, token: str | None, bound_host: str
) -> Outcome | None:
    """Why this action request is refused, or None when it may go ahead."""
    if not allow_actions and token is None:
        return Outcome(
            ok=False,
            status_code=403,
            message="actions are off: this dashboard is read-only; start it with "
            "`wfc ui --allow-actions`, or set WFC_UI_TOKEN and send that token",
        )
    origin = request.headers.get("origin")
    if origin is not None and urlsplit(origin).netloc != request.url.netloc:
        return Outcome(
            ok=False, status_code=403, message="refused: the request came from another site"
        )
    if not host_allowed(request, bound_host):
        return Outcome(ok=False, status_code=403, message="refused: unknown host name")
    if token is not None:
        given = _token_of(request)
        if given is None or not hmac.compare_digest(given.encode(), token.encode()):
            return Outcome(
                ok=False,
                status_code=401,
                message="refused: this action needs the dashboard's token (WFC_UI_TOKEN); "
                "open the dashboard once with ?token=… or send it as a bearer header",
            )
    return None


async def cancel(kernel: Kernel, run_id: str) -> Outcome:
    """Cancel the run (`run.cancel`): its stages executing now finish, their results dropped."""
    try:
        result = await kernel.dispatch(
            RunCancel(workflow_run_id=run_id, reason="cancelled from the dashboard")
        )
    except WfcError as error:
        return Outcome(ok=False, status_code=409, message=str(error))
    if not result.cancelled:
        return Outcome(
            ok=False, status_code=409, message=f"run {run_id} was not cancelled: it has finished"
        )
    return Outcome(ok=True, message=f"cancelled run {run_id}")


async def rerun(kernel: Kernel, run_id: str, from_stage: str) -> Outcome:
    """Run a finished run again from `from_stage` (`run.rerunFrom`); earlier stages keep
    their outputs."""
    try:
        result = await kernel.dispatch(
            RunRerunFrom(workflow_run_id=run_id, from_stage_id=from_stage)
        )
    except WfcError as error:
        return Outcome(ok=False, status_code=409, message=str(error))
    cleared = ", ".join(result.deleted_stages) or "-"
    return Outcome(ok=True, message=f"rerunning {run_id} from {from_stage} (cleared: {cleared})")
