"""Names the generated package already uses, so a workflow may not declare them.

The generated modules (`_models.py`, `_stages.py`, `__init__.py`, the stubs) bind
imports and helpers at module level and read a few builtins; a type, enum, field,
stage or workflow of the same name would replace or shadow one of them and the
package would fail to import or to type-check after `wfc check` said "no problems".
`tests/unit/test_reserved_names.py` renders packages that use every template
branch and fails when a template starts using a name missing here, so these sets
cannot drift from the templates.
"""

from __future__ import annotations

import keyword
import sys

GENERATED_MODULE_NAMES = frozenset(
    {"annotations"}  # `from __future__ import annotations` binds it
    # _models.py
    | {"datetime", "StrEnum", "BaseModel", "ConfigDict", "Field", "JsonValue", "RootModel"}
    | {"Url", "Email", "BlobRef"}
    # _stages.py
    | {"Literal", "TypeGuard", "StageId", "STAGE_IDS", "is_valid_stage_id"}
    | {"assert_valid_stage_id", "StageContext", "AsyncStage", "CheckContext", "Stage"}
    | {"ItemResult"}
    # __init__.py
    | {"Workflow", "load_workflow", "workflow"}
    # stages/<id>.py stubs
    | {"Any", "Completion", "Suspend"}
)
"""Every name a generated module binds at module level besides the workflow's own classes."""

GENERATED_BUILTINS = frozenset(
    {"str", "int", "float", "bool", "list", "dict", "tuple", "None", "True", "False"}
    | {"property", "ValueError", "NotImplementedError"}
)
"""The builtins the generated code reads: a class or attribute of that name would hide one."""

RESERVED_CLASS_NAMES = GENERATED_MODULE_NAMES | GENERATED_BUILTINS | set(keyword.kwlist)
"""Type and enum names (and generated class names) that would replace a name the package uses,
or not be a name at all (`class class(BaseModel)`)."""

ENUM_MEMBER_RESERVED = frozenset(
    set(keyword.kwlist) | {n for n in dir(str) if not n.startswith("_")} | {"mro"}
)
"""`StrEnum` members may not be keywords, override `str`'s methods (`upper`: a type error),
or be `mro` (the enum module refuses it). `name` and `value` are allowed."""

THIRD_PARTY_MODULES = frozenset(
    {"wfc", "pydantic", "pydantic_core", "typing_extensions", "typing_inspection"}
    | {"annotated_types", "jinja2", "markupsafe", "lark", "click", "rich", "pygments"}
    | {"markdown_it", "mdurl", "yaml", "sqlalchemy", "greenlet", "aiosqlite", "asyncpg"}
    | {"alembic", "mako", "cronsim", "uvloop", "starlette", "uvicorn", "anyio", "sniffio"}
    | {"idna", "h11", "httpx", "httpcore", "certifi", "pydantic_ai", "genai_prices"}
    | {"openai", "anthropic", "google", "distro", "jiter", "websockets", "opentelemetry"}
    | {"logfire_api", "griffe", "eval_type_backport", "exceptiongroup", "tomllib"}
    | {"interegular", "regex", "cython_runtime"}
)
"""Top-level modules `wfc` and its dependencies import: a package of that name beside the
user's project would be shadowed by (or would shadow) the real one."""

STDLIB_MODULES = frozenset(sys.stdlib_module_names)
"""Workflow ids that name a standard-library module (compared case-insensitively, since
macOS and Windows file systems are): `wfc run` would import that module, not the package."""


def module_clash(workflow_id: str) -> str | None:
    """What a package named `workflow_id` would clash with, or None."""
    folded = workflow_id.lower()
    if folded in STDLIB_MODULES:
        return f"the standard library's module `{folded}`"
    if folded in THIRD_PARTY_MODULES:
        return f"the module `{folded}`, which wfc imports"
    return None
