#!/usr/bin/env python3
"""Checks that every path and C++ type docs/design.md names in `backticks` exists in the tree.

docs/design.md is the picture of the code as built; a name in it that the code does not have
(a type that was never written, a file that moved) makes it wrong without anyone noticing.
This check reads every inline code span of the document and resolves the ones that name
something in the tree. Rules, in the order they are tried on a span:

  skipped     a span with whitespace outside template arguments (a command line, a formula,
              a config line), a URL, an npm package (`@scope/name`), an absolute path
              (`/manifest`: a dataset inside a checkpoint, not a file here), a span with `=`
              (an environment setting, a `--set`), and a path holding a `<placeholder>`
              (`runs/<name>/`: something kdtrain writes, not a file here).
  path        a span with a '/' or ending in a source extension (.h .hpp .cpp .cu .cuh .py
              .sh .md .yaml .yml .txt .cmake .sbatch .mjs). Relative to the repository root;
              a trailing '/' means a directory; `*` and `?` are globs that must match at least
              one path; `{a,b}` alternatives are each checked. A bare file name without a '/'
              (`device.cpp`) must be the name of some file in the tree. `path:symbol` checks
              the path and that the symbol occurs in that file as a whole word.
  C++ name    a span that is a C++ name, optionally qualified (`kern::cuda::DeviceBuffer`),
              with template arguments (`HostOps<T>`, stripped) or a call (`Comm::host_group()`,
              the call stripped). Every component of it that is a type name (upper-case first
              letter, at least one lower-case letter, no underscore: `QatState`, `AdamW`) must
              be defined in the C++ sources under base/ kernels/ data/ trainer/ tests/:
              class, struct, union or enum with a body, `using X =` or a typedef. Lower-case
              components (namespaces, functions, members: `kern`, `moment_shard`) and
              ALL-CAPS ones (macros, constants) are not checked.
  anything else (config keys like `train.steps`, formats like `int4:g128`) is skipped.

Fenced code blocks are not read: the design writes the names it means in inline spans, so
that all of them are checked. Standard library only; run with /usr/bin/python3.

Usage: scripts/check_design_refs.py [DOC]   (default docs/design.md, relative to the root)
Exit 0: every checked span resolves (a count is printed); 1: each unresolved span is printed
as DOC:LINE: `span`: why.
"""
import fnmatch
import glob
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CPP_DIRS = ["base", "kernels", "data", "trainer", "tests"]
CPP_EXTENSIONS = (".h", ".hpp", ".cpp", ".cu", ".cuh")
PATH_EXTENSIONS = (".h", ".hpp", ".cpp", ".cu", ".cuh", ".py", ".sh", ".md", ".yaml", ".yml",
                   ".txt", ".cmake", ".sbatch", ".mjs")
# Folders that are not the project's sources: build trees, run outputs, caches.
SKIP_DIRS = {".git", "build", "runs", ".cache", "node_modules", "__pycache__", "gpu-bundle", "gpu-check-out"}

CPP_NAME = re.compile(r"^(::)?[A-Za-z_~][A-Za-z0-9_]*(::[A-Za-z_~][A-Za-z0-9_]*)*$")
TYPE_NAME = re.compile(r"^[A-Z][A-Za-z0-9]*$")
FENCE = re.compile(r"^\s*(```|~~~)")
TICKS = re.compile(r"`+")


def tree_files():
    """Every file of the working tree, as root-relative paths."""
    for dirpath, dirnames, filenames in os.walk(ROOT):
        # build-*/ and build/ alike: ignored build outputs live there
        dirnames[:] = [d for d in dirnames if d not in SKIP_DIRS and not d.startswith("build")]
        for name in filenames:
            yield os.path.relpath(os.path.join(dirpath, name), ROOT)


def strip_comments(text):
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


def defined_types():
    """Names defined as types in the C++ sources (a forward declaration alone does not count,
    nor a template parameter such as `class Storage` in `template <class T, class Storage>`)."""
    body = re.compile(r"\b(?:class|struct|union|enum(?:\s+class|\s+struct)?)\s+(?:\[\[[^\]]*\]\]\s*)?"
                      r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:final\s*)?(?::[^;{()]*)?\{")
    alias = re.compile(r"\busing\s+([A-Za-z_][A-Za-z0-9_]*)\s*=")
    typedef = re.compile(r"\btypedef\b[^;]*?\b([A-Za-z_][A-Za-z0-9_]*)\s*;")
    names = set()
    for top in CPP_DIRS:
        for dirpath, dirnames, filenames in os.walk(os.path.join(ROOT, top)):
            dirnames[:] = [d for d in dirnames if d not in SKIP_DIRS]
            for name in filenames:
                if not name.endswith(CPP_EXTENSIONS):
                    continue
                with open(os.path.join(dirpath, name), encoding="utf-8", errors="replace") as f:
                    text = strip_comments(f.read())
                for pattern in (body, alias, typedef):
                    names.update(m.group(1) for m in pattern.finditer(text))
    return names


def spans(path):
    """(line number, span) for every inline code span outside fenced blocks. A span may run
    over a line break, as Markdown allows; it never runs over a blank line."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    paragraph, start, fenced = [], 0, False
    for i, line in enumerate(lines + [""], start=1):
        if FENCE.match(line):
            fenced = not fenced
            yield from paragraph_spans(paragraph, start)
            paragraph = []
            continue
        if fenced:
            continue
        if line.strip() == "":
            yield from paragraph_spans(paragraph, start)
            paragraph = []
            continue
        if not paragraph:
            start = i
        paragraph.append(line)


def paragraph_spans(lines, first_line):
    text = "\n".join(lines)
    pos = 0
    while True:
        m = TICKS.search(text, pos)
        if not m:
            return
        ticks = m.group(0)
        end = text.find(ticks, m.end())
        # an opening run without its closing run is literal text (Markdown's rule)
        while end != -1 and (text[end + len(ticks):end + len(ticks) + 1] == "`" or text[end - 1] == "`"):
            end = text.find(ticks, end + len(ticks))
        if end == -1:
            pos = m.end()
            continue
        content = text[m.end():end].replace("\n", " ").strip()
        yield first_line + text.count("\n", 0, m.start()), content
        pos = end + len(ticks)


def expand_braces(s):
    m = re.search(r"\{([^{}]*)\}", s)
    if not m:
        return [s]
    out = []
    for alt in m.group(1).split(","):
        out.extend(expand_braces(s[:m.start()] + alt + s[m.end():]))
    return out


def looks_like_path(s):
    return "/" in s or s.endswith(PATH_EXTENSIONS)


def check_path(s, basenames):
    """None when `s` resolves, else why not."""
    symbol = None
    m = re.match(r"^([^:]+):([A-Za-z_][A-Za-z0-9_]*)$", s)
    if m and looks_like_path(m.group(1)):
        s, symbol = m.group(1), m.group(2)
    for p in expand_braces(s):
        if "/" not in p.rstrip("/"):
            if p.endswith("/"):
                if not os.path.isdir(os.path.join(ROOT, p)):
                    return f"no directory {p}"
            elif not any(fnmatch.fnmatchcase(b, p) for b in basenames):
                return f"no file named {p} anywhere in the tree"
            continue
        if any(c in p for c in "*?["):
            if not glob.glob(os.path.join(ROOT, p)):
                return f"the glob {p} matches nothing"
            continue
        full = os.path.join(ROOT, p)
        if p.endswith("/"):
            if not os.path.isdir(full):
                return f"no directory {p}"
        elif p.endswith(PATH_EXTENSIONS):
            if not os.path.isfile(full):
                return f"no file {p}"
        elif not os.path.exists(full):
            return f"no file or directory {p}"
        if symbol is not None:
            with open(full, encoding="utf-8", errors="replace") as f:
                if not re.search(rf"\b{re.escape(symbol)}\b", f.read()):
                    return f"{p} does not mention {symbol}"
    return None


def strip_template_args(s):
    out, depth = [], 0
    for c in s:
        if c == "<":
            depth += 1
        elif c == ">":
            depth = max(0, depth - 1)
        elif depth == 0:
            out.append(c)
    return "".join(out)


def cpp_components(s):
    """The components of a C++ name, or None when the span is not one."""
    name = strip_template_args(s)
    name = re.sub(r"\(.*\)$", "", name)  # a call: the function itself is not checked
    if not CPP_NAME.match(name):
        return None
    return [c for c in name.split("::") if c]


def main():
    doc = sys.argv[1] if len(sys.argv) > 1 else "docs/design.md"
    doc_path = doc if os.path.isabs(doc) else os.path.join(ROOT, doc)
    basenames = {os.path.basename(p) for p in tree_files()}
    types = defined_types()
    problems, paths, names, skipped = [], 0, 0, 0
    for line, span in spans(doc_path):
        # template arguments may hold spaces (`Arena<T, Storage>`); anything else with one is prose
        if (not span or any(c.isspace() for c in strip_template_args(span)) or "://" in span
                or span.startswith(("/", "@")) or "=" in span):
            skipped += 1
            continue
        if looks_like_path(span):
            if "<" in span:
                skipped += 1
                continue
            why = check_path(span, basenames)
            paths += 1
        else:
            parts = cpp_components(span)
            checked = [c for c in parts or [] if TYPE_NAME.match(c) and any(ch.islower() for ch in c)]
            if not checked:
                skipped += 1
                continue
            missing = [c for c in checked if c not in types]
            why = f"no definition of {', '.join(missing)} in {' '.join(d + '/' for d in CPP_DIRS)}" if missing else None
            names += 1
        if why:
            problems.append(f"{doc}:{line}: `{span}`: {why}")
    for p in problems:
        print(p)
    if problems:
        print(f"check_design_refs: {len(problems)} of {paths + names} names in {doc} do not resolve")
        return 1
    print(f"check_design_refs: {doc}: {paths} paths and {names} C++ names resolve ({skipped} spans not checked)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
