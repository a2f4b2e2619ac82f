#!/usr/bin/env python3
"""The plugin ABI's fingerprint: the layouts abi_layout prints, and every virtual function of the
SDK's headers in declaration order (a virtual inserted in the middle of an interface moves the
ones after it, and a plugin built before calls the wrong function). Printed in full, then its
SHA-256; with --check VERSION_HPP, compared with DOPPEL_ABI_FINGERPRINT there.
  abi_fingerprint.py INCLUDE_DIR[:INCLUDE_DIR...] LAYOUT_FILE [--check VERSION_HPP]
Also refuses a type defined in the headers that LAYOUT_FILE does not list (add it to
tests/sdk/abi_layout.cpp), so that a new type cannot escape the fingerprint.
"""
import hashlib
import pathlib
import re
import sys

# Test support for plugin tests, compiled into the tests themselves: not part of the boundary.
NOT_BOUNDARY = {"testing.hpp"}


def strip_comments(text):
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    return re.sub(r"//[^\n]*", " ", text)


KEYWORDS = {"int", "long", "short", "char", "bool", "double", "float", "unsigned", "signed", "void", "const",
            "volatile", "auto"}


def split_top_level(text):
    """Splits a parameter list at the commas outside <>, () and {}."""
    parts, depth, current = [], 0, ""
    for ch in text:
        if ch in "<({":
            depth += 1
        elif ch in ">)}":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    if current.strip():
        parts.append(current)
    return parts


def signature(declaration):
    """A declaration without what the ABI does not see: parameter names and default arguments."""
    open_paren = declaration.find("(")
    depth, close_paren = 0, -1
    for i in range(open_paren, len(declaration)):
        depth += {"(": 1, ")": -1}.get(declaration[i], 0)
        if depth == 0:
            close_paren = i
            break
    if open_paren < 0 or close_paren < 0:
        return declaration
    params = []
    for param in split_top_level(declaration[open_paren + 1:close_paren]):
        param = re.split(r"\s=\s", param, maxsplit=1)[0].strip()
        tokens = param.split()
        if len(tokens) > 1 and re.fullmatch(r"[A-Za-z_]\w*", tokens[-1]) and tokens[-1] not in KEYWORDS:
            tokens = tokens[:-1]
        params.append(" ".join(tokens))
    return declaration[:open_paren + 1] + ", ".join(params) + declaration[close_paren:]


def virtuals(path):
    """(class, normalised declaration) for every virtual function, in order of declaration."""
    text = strip_comments(path.read_text())
    text = re.sub(r"^\s*#[^\n]*", " ", text, flags=re.M)  # preprocessor lines
    scopes, statement, found = [], "", []
    for ch in text:
        if ch not in "{};":
            statement += ch
            continue
        words = " ".join(statement.split())
        words = re.sub(r"^(public|protected|private)\s*:\s*", "", words)
        in_class = bool(scopes) and scopes[-1] is not None
        if words.startswith("virtual ") and in_class and ch in "{;":
            found.append((scopes[-1], signature(words)))
        if ch == "{":
            opened = re.search(r"\b(class|struct)\s+(\w+)[^()]*$", words)
            scopes.append(opened.group(2) if opened and not words.startswith("virtual ") else None)
        elif ch == "}" and scopes:
            scopes.pop()
        statement = ""
    return found


def defined_types(path):
    text = strip_comments(path.read_text())
    return set(re.findall(r"^(?:class|struct)\s+(\w+)\s*(?:final\s*)?(?::[^;{]*)?\{", text, flags=re.M))


def main():
    include_dirs = [pathlib.Path(d) for d in sys.argv[1].split(":")]
    layout_file = pathlib.Path(sys.argv[2])
    layout = layout_file.read_text().splitlines()
    laid_out = {line.split()[0].split("::")[-1] for line in layout if line.strip()}
    lines = ["layout " + line for line in layout if line.strip()]
    missing = []
    for header in sorted(h for d in include_dirs for h in d.glob("*.hpp")):
        if header.name in NOT_BOUNDARY:
            continue
        for cls, declaration in virtuals(header):
            lines.append("virtual %s %s: %s" % (header.name, cls, declaration))
        missing += ["%s (%s)" % (t, header.name) for t in sorted(defined_types(header) - laid_out)]
    fingerprint = hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]
    print("\n".join(lines))
    print("fingerprint", fingerprint)
    if missing:
        print("FAIL: types in the SDK headers that tests/sdk/abi_layout.cpp does not lay out: " + ", ".join(missing),
              file=sys.stderr)
        return 1
    if len(sys.argv) > 4 and sys.argv[3] == "--check":
        version_hpp = pathlib.Path(sys.argv[4]).read_text()
        version = re.search(r"#define DOPPEL_ABI_VERSION (\d+)", version_hpp).group(1)
        recorded = re.search(r'#define DOPPEL_ABI_FINGERPRINT "(\w*)"', version_hpp)
        recorded = recorded.group(1) if recorded else "(none)"
        if recorded != fingerprint:
            print("FAIL: the plugin ABI changed: its fingerprint is %s, but version.hpp records %s for ABI %s.\n"
                  "Plugins built against ABI %s would misread it. Bump DOPPEL_ABI_VERSION and set "
                  "DOPPEL_ABI_FINGERPRINT to \"%s\" in %s (new virtual functions go at the end of their "
                  "interface; docs/plugin-author-guide.md)." % (fingerprint, recorded, version, version, fingerprint,
                                                               sys.argv[4]), file=sys.stderr)
            return 1
        print("ABI %s: fingerprint %s as recorded" % (version, fingerprint))
    return 0


if __name__ == "__main__":
    sys.exit(main())
