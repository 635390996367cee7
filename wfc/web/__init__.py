"""`wfc ui`: a small server-rendered dashboard over the database the workers use.

Starlette routes render Jinja2 templates; htmx (vendored under `static/`, no
build step) swaps fragments in place and polls the ones that change while a
run moves. Everything is read through the persistence port, so the pages show
what `wfc runs list|show` show, on any store; the two actions (cancel, rerun
from a stage) are kernel commands dispatched like the CLI's, and refused
unless the server was started to allow them. Starlette and uvicorn come with
the optional `ui` extra: import `wfc.web.app` only where they are wanted.
"""
