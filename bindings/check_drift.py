#!/usr/bin/env python3
"""Fail when include/fidius.h has a function or enum value a binding lacks.

Reads the header (the C API's one source of truth) and checks each binding
for every `fidius_*` function and every enum value:
  Go      functions called as `C.fidius_x(` (or from its cgo C shims, for
          calls that pass Go callbacks), values named as `C.FIDIUS_X`;
  C#      functions declared `extern ... fidius_x(`, values `PascalCase = N`;
  Python  functions in the signature table as `"fidius_x":`, values `SUFFIX = N`.
It also checks the version each binding was written for against the header's
FIDIUS_VERSION_STRING: C#'s `BindingVersion = "X.Y.Z"` and Python's
`BINDING_VERSION = "X.Y.Z"` (Go compiles against the header's macros).

  python3 bindings/check_drift.py [HEADER]     (exit 1 and a list on drift)
"""
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent


def read(paths):
    return "\n".join(p.read_text() for p in paths)


def header_surface(text):
    functions = sorted(set(re.findall(r"^[a-z].*?\b(fidius_\w+)\(", text, re.M)))
    values = []  # (enum type, constant, suffix, number)
    for name, body in re.findall(r"typedef enum (fidius_\w+) \{(.*?)\}", text, re.S):
        prefix = name.upper() + "_"
        for const, number in re.findall(r"^\s*(FIDIUS_\w+) = (\d+),", body, re.M):
            values.append((name, const, const[len(prefix):], int(number)))
    return functions, values


def header_version(text):
    m = re.search(r'^#define FIDIUS_VERSION_STRING "([^"]*)"', text, re.M)
    return m.group(1) if m else None


def binding_version(text, name):
    m = re.search(rf'\b{name}\s*=\s*"([^"]*)"', text)
    return m.group(1) if m else None


def pascal(suffix):
    return "".join(w.capitalize() for w in suffix.split("_"))


def main():
    header = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "include/fidius.h"
    header_text = header.read_text()
    functions, values = header_surface(header_text)
    go = read(p for p in (ROOT / "bindings/go").glob("*.go") if not p.name.endswith("_test.go"))
    go_shims = read((ROOT / "bindings/go").glob("*.c"))
    cs = read([ROOT / "bindings/csharp/Fidius.cs"])
    py = read(p for p in (ROOT / "bindings/python").rglob("*.py") if not p.name.startswith("test"))
    missing = []
    for f in functions:
        if f"C.{f}(" not in go and f"{f}(" not in go_shims:
            missing.append(f"Go: function {f}")
        if not re.search(rf"extern\b[^;]*\b{f}\(", cs):
            missing.append(f"C#: function {f}")
        if f'"{f}":' not in py:
            missing.append(f"Python: function {f}")
    for enum, const, suffix, number in values:
        if f"C.{const}" not in go:
            missing.append(f"Go: {enum} value {const}")
        if not re.search(rf"\b{pascal(suffix)} = {number}\b", cs):
            missing.append(f"C#: {enum} value {pascal(suffix)} = {number}")
        if not re.search(rf"\b{suffix} = {number}\b", py):
            missing.append(f"Python: {enum} value {suffix} = {number}")
    stale = []  # binding versions that are not the header's
    version = header_version(header_text)
    if version is None:
        stale.append("header: no FIDIUS_VERSION_STRING")
    else:
        for lang, text, name in (("C#", cs, "BindingVersion"), ("Python", py, "BINDING_VERSION")):
            bound = binding_version(text, name)
            if bound != version:
                found = "missing" if bound is None else f'"{bound}"'
                stale.append(f'{lang}: {name} is {found}, header FIDIUS_VERSION_STRING is "{version}"')
    if missing or stale:
        counts = [f"{len(missing)} unbound"] if missing else []
        counts += [f"{len(stale)} stale version{'s' if len(stale) > 1 else ''}"] if stale else []
        print(f"bindings drift from {header}: {', '.join(counts)}")
        for m in missing + stale:
            print("  " + m)
        return 1
    print(f"bindings match {header.name}: {len(functions)} functions and {len(values)} enum values bound in Go, C# and Python; "
          f"C# and Python written for version {version}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
