"""Text corpora as streams of documents: the built-in one, text files, and JSON Lines.

``load_corpus(spec)`` gives a :class:`Corpus`, an iterable of :class:`Document` in a fixed order, read
lazily so a capture that stops after N tokens reads only what it needs.

- ``"builtin"``: the docstrings of the running Python's standard library (modules, classes, functions),
  read with ``ast`` from the source files, never imported; test suites and ``site-packages`` are left
  out; whitespace is normalised, docstrings under 40 characters are dropped, and exact duplicates
  (after normalisation) are kept once. English technical prose, no download. Its contents depend on the
  Python version, which the corpus spec records.
- A ``.txt``/``.md`` file: one document per paragraph (blank-line separated).
- A folder: every ``.txt``/``.md`` file under it, in sorted path order, paragraphs as above.
- A ``.jsonl`` file: one document per line, the text under ``field`` (default ``"text"``).
"""

from __future__ import annotations

import ast
import hashlib
import json
import re
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from latentatlas.errors import LatentAtlasError

TEXT_SUFFIXES = (".txt", ".md")
_SKIP_DIRS = {"test", "tests", "idle_test", "site-packages", "dist-packages", "__pycache__", "lib2to3", "turtledemo"}
_WS = re.compile(r"\s+")
MIN_CHARS = 40


@dataclass(frozen=True)
class Document:
    text: str
    source: str  # where it came from: "module:qualname", "file.txt#3", "file.jsonl:12"


def _normalise(text: str) -> str:
    return _WS.sub(" ", text).strip()


class Corpus:
    """An ordered, re-iterable stream of documents with a spec that rebuilds it."""

    def __init__(self, spec: dict[str, Any], name: str):
        self.spec = spec
        self.name = name

    def __iter__(self) -> Iterator[Document]:
        kind = self.spec["kind"]
        if kind == "builtin":
            return _stdlib_docstrings()
        if kind == "text":
            return _text_documents(Path(self.spec["path"]))
        if kind == "jsonl":
            return _jsonl_documents(Path(self.spec["path"]), self.spec.get("field", "text"))
        raise LatentAtlasError(f"corpus kind '{kind}' is unknown; expected builtin, text or jsonl")

    def take(self, n: int) -> list[Document]:
        out = []
        for doc in self:
            if len(out) >= n:
                break
            out.append(doc)
        return out


def _stdlib_root() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def _stdlib_files(root: Path) -> list[Path]:
    files = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).parts
        if any(p in _SKIP_DIRS or p.startswith("test_") for p in rel):
            continue
        files.append(path)
    return files


def _stdlib_docstrings() -> Iterator[Document]:
    root = _stdlib_root()
    if not root.is_dir():
        raise LatentAtlasError(f"the built-in corpus needs Python's standard library sources at {root}, which is missing")
    seen: set[bytes] = set()
    for path in _stdlib_files(root):
        try:
            tree = ast.parse(path.read_text(encoding="utf-8", errors="replace"))
        except (SyntaxError, ValueError, OSError):
            continue  # a few stdlib files are templates or need another encoding: skip them
        module = ".".join(path.relative_to(root).with_suffix("").parts).removesuffix(".__init__")
        stack: list[tuple[ast.AST, str]] = [(tree, "")]
        while stack:
            node, qual = stack.pop(0)
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                raw = ast.get_docstring(node, clean=True)
                if raw:
                    text = _normalise(raw)
                    key = hashlib.blake2b(text.encode(), digest_size=16).digest()
                    if len(text) >= MIN_CHARS and key not in seen:
                        seen.add(key)
                        yield Document(text, f"{module}:{qual}" if qual else module)
            for child in ast.iter_child_nodes(node):
                if isinstance(child, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                    stack.append((child, f"{qual}.{child.name}" if qual else child.name))


def _paragraphs(path: Path) -> Iterator[Document]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise LatentAtlasError(f"corpus file '{path}' is not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    for i, para in enumerate(p for p in re.split(r"\n\s*\n", text) if p.strip()):
        yield Document(_normalise(para), f"{path.name}#{i}")


def _text_documents(path: Path) -> Iterator[Document]:
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix.lower() in TEXT_SUFFIXES and p.is_file())
        if not files:
            raise LatentAtlasError(f"corpus folder '{path}' holds no .txt or .md files")
        for f in files:
            yield from _paragraphs(f)
    else:
        yield from _paragraphs(path)


def _jsonl_documents(path: Path, field: str) -> Iterator[Document]:
    with path.open("rb") as fh:
        for line_no, raw in enumerate(fh, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise LatentAtlasError(f"corpus file '{path}' line {line_no} is not UTF-8 text") from None
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except RecursionError:
                raise LatentAtlasError(f"corpus file '{path}' line {line_no} is nested too deeply to be a JSON record") from None
            except json.JSONDecodeError as exc:
                raise LatentAtlasError(f"corpus file '{path}' line {line_no} is not valid JSON ({exc.msg})") from exc
            except ValueError as exc:  # an integer of thousands of digits
                raise LatentAtlasError(f"corpus file '{path}' line {line_no} is not a JSON record latentatlas reads ({str(exc)[:80]})") from None
            if not isinstance(row, dict) or field not in row:
                raise LatentAtlasError(f"corpus file '{path}' line {line_no} has no field '{field}'; pass the text field's name with --text-field")
            if not isinstance(row[field], str):
                raise LatentAtlasError(f"corpus file '{path}' line {line_no}: field '{field}' is {type(row[field]).__name__}, expected a string")
            text = _normalise(row[field])
            if text:
                yield Document(text, f"{path.name}:{line_no}")


def load_corpus(spec: str | dict[str, Any] = "builtin", field: str = "text") -> Corpus:
    """``"builtin"``, a path (.txt/.md file, folder, .jsonl), or a corpus's own ``.spec`` dict."""
    if isinstance(spec, dict):
        if spec.get("kind") not in ("builtin", "text", "jsonl"):
            raise LatentAtlasError(f"corpus spec {spec!r} has no known 'kind'; expected builtin, text or jsonl")
        name = "builtin" if spec["kind"] == "builtin" else Path(spec["path"]).stem
        return Corpus(dict(spec), name)
    if spec == "builtin":
        return Corpus({"kind": "builtin", "python": ".".join(map(str, sys.version_info[:3]))}, "builtin")
    path = Path(spec).expanduser()
    if not path.exists():
        raise LatentAtlasError(f"corpus '{spec}' does not exist; expected 'builtin', a .txt/.md file, a folder of them, or a .jsonl file")
    if path.is_dir():
        return Corpus({"kind": "text", "path": str(path.resolve())}, path.name)
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return Corpus({"kind": "jsonl", "path": str(path.resolve()), "field": field}, path.stem)
    if suffix in TEXT_SUFFIXES:
        return Corpus({"kind": "text", "path": str(path.resolve())}, path.stem)
    raise LatentAtlasError(f"corpus file '{spec}' has suffix '{path.suffix}'; expected .txt, .md or .jsonl")
