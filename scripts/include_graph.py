#!/usr/bin/env python3
"""The folder graph of kdtrain's #include lines, and a check that it has no cycle.

Every C++/CUDA file under the source folders is read; each `#include "x/y.h"` that names a
file of the tree (relative to the including file's folder, else to the repository root, as
the compiler's include path has it) is an edge from the including file's folder to the
included file's folder. Includes within one folder are not edges. A cycle between folders
(a strongly connected component of more than one folder) fails the check: a folder that
reaches back to a folder above it means the layers are not layers (docs/design.md,
"Layout"). Only the folder graph is checked: a cycle between files would not compile.

Usage: scripts/include_graph.py [--quiet]   exit 0: no cycle; 1: a cycle (each printed).
"""
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCE_DIRS = ["base", "kernels", "data", "trainer", "tests"]
EXTENSIONS = (".h", ".hpp", ".cpp", ".cu", ".cuh")
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"')


def source_files():
    for top in SOURCE_DIRS:
        for dirpath, dirnames, filenames in os.walk(os.path.join(ROOT, top)):
            dirnames[:] = sorted(d for d in dirnames if d not in ("build", "fixtures", "data"))
            for name in sorted(filenames):
                if name.endswith(EXTENSIONS):
                    yield os.path.relpath(os.path.join(dirpath, name), ROOT)


def resolve(including, target):
    for base in (os.path.dirname(including), ""):
        path = os.path.normpath(os.path.join(base, target))
        if os.path.isfile(os.path.join(ROOT, path)):
            return path
    return None  # a system or generated header


def folder_graph():
    edges = {}  # folder -> {folder: [example "file -> header"]}
    for f in source_files():
        src = os.path.dirname(f)
        edges.setdefault(src, {})
        with open(os.path.join(ROOT, f), encoding="utf-8", errors="replace") as fh:
            for line in fh:
                m = INCLUDE.match(line)
                if not m:
                    continue
                hit = resolve(f, m.group(1))
                if hit is None:
                    continue
                dst = os.path.dirname(hit)
                if dst != src:
                    edges[src].setdefault(dst, []).append(f"{f} -> {hit}")
                    edges.setdefault(dst, {})
    return edges


def strongly_connected(edges):
    """Tarjan's algorithm, iterative: the components of more than one folder."""
    index, low, on_stack, stack, out = {}, {}, set(), [], []
    counter = [0]
    for start in sorted(edges):
        if start in index:
            continue
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = counter[0]
        counter[0] += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, it = work[-1]
            advanced = False
            for nxt in it:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter[0]
                    counter[0] += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(edges[nxt]))))
                    advanced = True
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    top = stack.pop()
                    on_stack.discard(top)
                    comp.append(top)
                    if top == node:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return out


def main():
    quiet = "--quiet" in sys.argv[1:]
    edges = folder_graph()
    if not quiet:
        print("folder include graph (folder -> the folders it includes, with the number of #include lines):")
        for src in sorted(edges):
            if edges[src]:
                deps = ", ".join(f"{d} ({len(edges[src][d])})" for d in sorted(edges[src]))
                print(f"  {src} -> {deps}")
    cycles = strongly_connected(edges)
    for comp in cycles:
        print(f"include_graph: CYCLE between folders {{{', '.join(comp)}}}; the #include lines inside it:")
        members = set(comp)
        for src in comp:
            for dst in sorted(edges[src]):
                if dst in members:
                    for example in edges[src][dst]:
                        print(f"    {example}")
    if cycles:
        return 1
    print(f"include_graph: {len(edges)} folders, no cycle")
    return 0


if __name__ == "__main__":
    sys.exit(main())
