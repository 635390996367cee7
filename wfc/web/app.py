"""The dashboard's Starlette application: routes, the kernel they share, template helpers.

`create_app` takes a way to open a kernel (the CLI's opens the SQL storage
`wfc ui --db` names and builds the kernel as `wfc runs` does; tests pass one on
memory ports), opened once for the app's life. Every page is a full HTML page;
the parts that change (the runs table, a run's live part) are also served
alone, for htmx to poll and swap in place. A run's live part polls only while
the run moves: a finished run's part carries no trigger, so polling stops.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

from sqlalchemy.exc import DBAPIError, OperationalError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from wfc.plan import Plan
from wfc.runtime.kernel import Kernel
from wfc.runtime.records import Status
from wfc.runtime.run_ids import AmbiguousRunIdError, RunIdError, resolve_run_id
from wfc.web import actions, views
from wfc.web.format import FILTERS
from wfc.web.graph import layers

HERE = Path(__file__).parent
PAGE_SIZE = 50
PAGE_SIZE_MAX = 500


@dataclass(frozen=True, slots=True, kw_only=True)
class UiSettings:
    """How the dashboard was started: whether it may act, the token actions need, the host
    it is bound to (for the host check), whether rerun has workflows to run, polling."""

    allow_actions: bool = False
    token: str | None = None
    host: str = "127.0.0.1"
    can_rerun: bool = False
    run_refresh_ms: int = 1000
    runs_refresh_ms: int = 5000

    @property
    def actions_enabled(self) -> bool:
        return self.allow_actions or self.token is not None


class _Dashboard:
    """The routes, and what they share: the kernel once the app started, parsed plans."""

    def __init__(
        self, open_kernel: Callable[[], AbstractAsyncContextManager[Kernel]], settings: UiSettings
    ) -> None:
        self.open_kernel = open_kernel
        self.settings = settings
        self.templates = Jinja2Templates(directory=str(HERE / "templates"))
        self.templates.env.filters.update(FILTERS)
        self.templates.env.globals["settings"] = settings
        self.templates.env.trim_blocks = self.templates.env.lstrip_blocks = True
        self._kernel: Kernel | None = None
        self.plans: dict[str, Plan] = {}

    @contextlib.asynccontextmanager
    async def lifespan(self, _app: Starlette) -> AsyncIterator[None]:
        async with self.open_kernel() as kernel:
            self._kernel = kernel
            try:
                yield
            finally:
                self._kernel = None

    @property
    def kernel(self) -> Kernel:
        if self._kernel is None:  # only between shutdown and the last request
            raise HTTPException(503, "the dashboard is stopping")
        return self._kernel

    def render(
        self, request: Request, name: str, status_code: int = 200, **context: Any
    ) -> Response:
        return self.templates.TemplateResponse(request, name, context, status_code=status_code)

    async def home(self, _request: Request) -> Response:
        return RedirectResponse("/runs", status_code=303)

    async def runs(self, request: Request) -> Response:
        """The runs page, or its table alone (`/runs/table`, what htmx polls and swaps)."""
        query = _RunsQuery.parse(request)
        page = await views.runs_page(
            self.kernel,
            status=query.status,
            workflow_id=query.workflow,
            id_prefix=query.prefix,
            before=query.before,
            limit=query.limit,
        )
        fragment = request.url.path.endswith("/table")
        return self.render(
            request,
            "_runs_table.html" if fragment else "runs.html",
            page=page,
            query=query,
            now=self.kernel.deps.clock.now(),
            statuses=[s.value for s in Status if s is not Status.SKIPPED],
        )

    async def run(self, request: Request) -> Response:
        """A run's page, or its live part alone (`/runs/{id}/live`)."""
        typed = request.path_params["run_id"]
        try:
            run_id = await resolve_run_id(self.kernel.deps.persistence, typed)
        except RunIdError as error:
            status = 400 if isinstance(error, AmbiguousRunIdError) else 404
            return self.render(request, "missing.html", status, what=str(error))
        fragment = request.url.path.endswith("/live")
        if run_id != typed:  # a prefix: to the run's own address, which its page polls
            live = "/live" if fragment else ""
            return RedirectResponse(f"/runs/{run_id}{live}", status_code=303)
        view = await views.run_view(self.kernel, run_id, self.plans)
        if view is None:
            return self.render(request, "missing.html", 404, what=f"no run {run_id}")
        return self.render(request, "_run_live.html" if fragment else "run.html", view=view)

    async def act(self, request: Request) -> Response:
        """`POST /runs/{id}/cancel|rerun`: the outcome as a message to swap in."""
        outcome = await self._outcome(request)
        response = self.render(request, "_message.html", outcome.status_code, outcome=outcome)
        if outcome.ok:  # the run's live part refreshes, and polls again if the run moves
            response.headers["HX-Trigger"] = "run-changed"
        return response

    async def _outcome(self, request: Request) -> actions.Outcome:
        settings = self.settings
        refused = actions.refusal(
            request,
            allow_actions=settings.allow_actions,
            token=settings.token,
            bound_host=settings.host,
        )
        run_id, action = request.path_params["run_id"], request.path_params["action"]
        if refused is not None:
            return refused
        if action == "cancel":
            return await actions.cancel(self.kernel, run_id)
        if action != "rerun":
            return actions.Outcome(ok=False, status_code=404, message=f"no action {action!r}")
        if not settings.can_rerun:
            return actions.Outcome(
                ok=False,
                status_code=409,
                message="rerun needs the workflows: start wfc ui with --plan for them",
            )
        # The form is small and urlencoded (htmx's default): parsed here, so the dashboard
        # needs no multipart parser (Starlette's `request.form()` wants python-multipart).
        form = parse_qs((await request.body()).decode(errors="replace"))
        return await actions.rerun(self.kernel, run_id, (form.get("stage") or [""])[0])

    async def workflows(self, request: Request) -> Response:
        plans = await views.plan_views(self.kernel, self.plans)
        return self.render(request, "workflows.html", plans=plans)

    async def workflow(self, request: Request) -> Response:
        fingerprint = request.path_params["fingerprint"]
        # PostgreSQL refuses a NUL in text; no fingerprint holds one.
        plan = (
            None
            if "\x00" in fingerprint
            else await views.load_plan(self.kernel, fingerprint, self.plans)
        )
        if plan is None:
            return self.render(request, "missing.html", 404, what=f"no kept plan {fingerprint}")
        return self.render(request, "workflow.html", plan=plan, layers=layers(plan, []))

    async def workers(self, request: Request) -> Response:
        return self.render(request, "workers.html", view=await views.workers_view(self.kernel))

    async def unreachable(self, request: Request, error: Exception) -> Response:
        """A database error: one line on the page, no traceback."""
        reason = str(getattr(error, "orig", error) or error).splitlines()[0]
        return self.render(request, "missing.html", 503, what=f"the database failed: {reason}")

    async def http_error(self, request: Request, error: Exception) -> Response:
        assert isinstance(error, HTTPException)
        return self.render(request, "missing.html", error.status_code, what=error.detail)


def create_app(
    open_kernel: Callable[[], AbstractAsyncContextManager[Kernel]], settings: UiSettings
) -> Starlette:
    """The dashboard over the kernel `open_kernel` opens when the app starts."""
    ui = _Dashboard(open_kernel, settings)
    app = Starlette(
        routes=[
            Route("/", ui.home),
            Route("/runs", ui.runs),
            Route("/runs/table", ui.runs),
            Route("/runs/{run_id}", ui.run),
            Route("/runs/{run_id}/live", ui.run),
            Route("/runs/{run_id}/{action}", ui.act, methods=["POST"]),
            Route("/workflows", ui.workflows),
            Route("/workflows/{fingerprint}", ui.workflow),
            Route("/workers", ui.workers),
            Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
        ],
        lifespan=ui.lifespan,
        exception_handlers={
            OperationalError: ui.unreachable,
            DBAPIError: ui.unreachable,
            OSError: ui.unreachable,
            HTTPException: ui.http_error,
        },
    )
    if settings.token is not None:
        app.add_middleware(_TokenCookie, token=settings.token)
    return app


@dataclass(frozen=True, slots=True, kw_only=True)
class _RunsQuery:
    """The runs page's filters and page, from the query string (bad values: a 400 page)."""

    status: Status | None
    workflow: str | None
    prefix: str | None
    before: tuple[datetime, str] | None
    limit: int

    @classmethod
    def parse(cls, request: Request) -> _RunsQuery:
        params = request.query_params
        status_text = (params.get("status") or "").upper()
        if status_text and status_text not in Status.__members__:
            raise HTTPException(400, f"unknown status {status_text!r}")
        limit_text = params.get("limit") or str(PAGE_SIZE)
        if not limit_text.isdigit() or not 1 <= int(limit_text) <= PAGE_SIZE_MAX:
            raise HTTPException(400, f"limit must be a number from 1 to {PAGE_SIZE_MAX}")
        if any("\x00" in params.get(name, "") for name in ("workflow", "q", "before")):
            # PostgreSQL refuses a NUL in text: it would be a "database failed" page (503).
            raise HTTPException(400, "a NUL character matches no workflow and no run id")
        return cls(
            status=Status(status_text) if status_text else None,
            workflow=params.get("workflow") or None,
            prefix=(params.get("q") or "").strip() or None,
            before=_cursor(params.get("before")),
            limit=int(limit_text),
        )

    def link(self, **changes: Any) -> str:
        """The query string of this view with `changes` (None drops a parameter)."""
        values: dict[str, Any] = {
            "status": self.status.value if self.status else None,
            "workflow": self.workflow,
            "q": self.prefix,
            "limit": self.limit if self.limit != PAGE_SIZE else None,
        }
        values.update(changes)
        return urlencode({k: v for k, v in values.items() if v not in (None, "")})


def _cursor(text: str | None) -> tuple[datetime, str] | None:
    """`before=<created_at ISO>~<run id>`, as the page's "older" link writes it."""
    if not text:
        return None
    stamp, sep, run_id = text.partition("~")
    try:
        created_at = datetime.fromisoformat(stamp)
    except ValueError:
        created_at = None
    if not sep or not run_id or created_at is None or created_at.tzinfo is None:
        raise HTTPException(400, "bad page cursor: follow the page's own links")
    return created_at, run_id


class _TokenCookie:
    """Opened with `?token=…` (the right one), the dashboard keeps the token in a cookie
    for the actions to carry, and drops it from the address."""

    def __init__(self, app: Any, token: str) -> None:
        self.app, self.token = app, token

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            request = Request(scope)
            given = request.query_params.get("token")
            if given is not None:
                rest = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
                target = request.url.path + (f"?{urlencode(rest)}" if rest else "")
                response: Response = RedirectResponse(target, 303)
                if given == self.token:
                    response.set_cookie(
                        actions.TOKEN_COOKIE, given, httponly=True, samesite="strict"
                    )
                else:
                    response = HTMLResponse("wrong token", status_code=401)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
