"""Whether a `.wf` file's generated package is up to date, told without the compiler.

`wfc run pipeline.wf` (and `wfc worker`, `wfc ui`, any command given a `.wf`) compile
the file first, since the user may have edited it. Compiling a file that has not
changed writes nothing, but it still imports the compiler (Lark, Jinja2, the checks: a
quarter of a second) and parses, checks and renders everything (70 ms for the README's
example): about a third of a `wfc run`. A successful compile leaves a stamp of what it read and wrote;
the next run compares the stamp with the files and compiles only when something moved.

The stamp (`__pycache__/<file>.wfc-build.json` beside the source, where Python keeps
its own caches and version control already ignores them) records:
- this wfc: its version and the size and modification time of every file of the
  package, so a new or edited compiler never reuses an old build;
- by content hash, every file the compile read or wrote: the source and its imports,
  the generated files (a package edited or deleted by hand is written again), and the
  stage files (the user's code, which the compile checks still fits its stage), each
  hashed from the text the compiler used, never read again after it;
- each import as written, with the file it resolved to (a link pointed elsewhere).
Anything missing, unreadable or different means "compile", never an error. Editing a
stage's code therefore compiles once more on the next run, as before; running the same
files again does not.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Mapping
from functools import cache
from pathlib import Path

import wfc

STAMP_FORMAT = 2
_PACKAGE = Path(wfc.__file__).resolve().parent


def stamp_path(source: Path) -> Path:
    """Where the stamp of `source`'s last successful compile is kept."""
    return source.parent / "__pycache__" / f"{source.name}.wfc-build.json"


@cache
def wfc_fingerprint() -> str:
    """This installation of wfc: its version and every file of the package by size and
    modification time (an editable install's edits change it too). Once per process."""
    digest = hashlib.sha256(wfc.__version__.encode())
    for directory, subdirectories, files in os.walk(_PACKAGE):
        subdirectories[:] = sorted(d for d in subdirectories if d != "__pycache__")
        for name in sorted(files):
            info = os.stat(os.path.join(directory, name))
            digest.update(f"{directory}/{name}:{info.st_size}:{info.st_mtime_ns};".encode())
    return digest.hexdigest()


def text_hash(text: str) -> str:
    """The hash a file's text is kept by."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def file_hash(path: Path) -> str | None:
    """The hash of the file's text as the compiler reads it (UTF-8, a BOM dropped), or
    None when it cannot be read as such."""
    try:
        return text_hash(path.read_bytes().decode("utf-8-sig"))
    except (OSError, UnicodeDecodeError):
        return None


def _key(path: Path) -> str:
    """A file's absolute path as written, symlinks not followed: an import through a link
    that now points elsewhere is read again, and found to be another file."""
    return os.path.abspath(path)


def forget(source: Path) -> None:
    """Drop `source`'s stamp, as a compile starts: one that fails, or stops half way, must
    leave none behind."""
    with contextlib.suppress(OSError):
        stamp_path(source).unlink(missing_ok=True)


def write_stamp(
    source: Path,
    *,
    out_dir: Path,
    hashes: Mapping[Path, str | None],
    links: Mapping[Path, Path] | None = None,
) -> None:
    """Record a successful compile of `source` into `out_dir`: `hashes` of every file it
    read or wrote (the source among them), taken from the text the compiler read or wrote
    (or from the file before the compiler read it), never after: a file saved during the
    compile then differs from its stamp, and is compiled again. `links` are the paths the
    sources named (an import as written) with the file each resolved to: one that resolves
    elsewhere now (a symbolic link pointed at another directory) is compiled again. A stamp
    that cannot be written is no error: the next run compiles again."""
    stamp = {
        "format": STAMP_FORMAT,
        "wfc": wfc_fingerprint(),
        "out_dir": _key(out_dir),
        "files": {_key(path): digest for path, digest in hashes.items()},
        "links": {_key(named): str(found) for named, found in (links or {}).items()},
    }
    target = stamp_path(source)
    try:
        target.parent.mkdir(exist_ok=True)
        partial = target.with_name(f"{target.name}.{os.getpid()}.tmp")
        partial.write_text(json.dumps(stamp, indent=1), encoding="utf-8")
        partial.replace(target)  # whole or not at all, for a run reading it meanwhile
    except OSError:
        return


def up_to_date(source: Path) -> Path | None:
    """The package `source` was compiled into, if compiling it again would change nothing
    (same wfc, every file it read or wrote as it was); else None."""
    try:
        stamp = json.loads(stamp_path(source).read_text(encoding="utf-8"))
        if stamp["format"] != STAMP_FORMAT or stamp["wfc"] != wfc_fingerprint():
            return None
        out_dir = Path(stamp["out_dir"])
        files = {Path(path): digest for path, digest in stamp["files"].items()}
        links = dict(stamp["links"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    if Path(_key(source)) not in files:
        return None
    if any(os.path.realpath(named) != found for named, found in links.items()):
        return None
    for path, digest in files.items():
        if digest is None or file_hash(path) != digest:
            return None
    return out_dir
