"""Append strings to one array of a JSON document *in its text*: the user's indentation (tabs or
spaces), key order and number spellings (``1e-05``, ``1.0``) stay exactly as they were, so the
diff of ``checkpoint fix`` shows only the entries it adds. A re-serialised file would rewrite
every number and every indent."""

from __future__ import annotations

import json
import re

from wafer_sglang.errors import WaferError

WS = re.compile(r"[ \t\n\r]*")
_decoder = json.JSONDecoder()


def append_strings(text: str, path: tuple[str, ...], values: list[str]) -> str:
    """``text`` with ``values`` appended to the array at ``path`` (created, as the last member of
    its parent object, when missing). The result is checked by parsing it."""
    if not values:
        return text
    expected = json.loads(text)
    node = expected
    for key in path[:-1]:
        node = node[key]
    node.setdefault(path[-1], []).extend(values)
    edited = _edit(text, path, values)
    if json.loads(edited) != expected:
        raise WaferError("internal: the in-place JSON edit did not produce the expected document")  # pragma: no cover
    return edited


def _edit(text: str, path: tuple[str, ...], values: list[str]) -> str:
    start, end = _span(text, _skip(text, 0), path[:-1])  # the parent object
    members = _members(text, start)
    unit = _indent_unit(text)
    parent_indent = _line_indent(text, start)
    found = next((v for k, v in members if k[2] == path[-1]), None)
    if found is not None:
        return _append_to_array(text, *found, values, parent_indent + unit, unit)
    entry = f"{json.dumps(path[-1])}: {json.dumps(values, ensure_ascii=False)}"
    if not members:
        return text[: end - 1] + entry + text[end - 1 :]
    (key_start, _, _), (_, last_end) = members[-1]
    return text[:last_end] + "," + (_preceding_ws(text, key_start) or " ") + entry + text[last_end:]


def _append_to_array(text: str, a: int, b: int, values: list[str], indent: str, unit: str) -> str:
    items = _items(text, a)
    encoded = [json.dumps(v, ensure_ascii=False) for v in values]
    if items:
        last_start, last_end = items[-1]
        sep = _preceding_ws(text, last_start) or " "
        return text[:last_end] + "".join("," + sep + e for e in encoded) + text[last_end:]
    if "\n" not in text:  # a one-line document stays one line
        return text[:a] + "[" + ", ".join(encoded) + "]" + text[b:]
    inner = ",".join(f"\n{indent}{unit}{e}" for e in encoded)
    return text[:a] + "[" + inner + f"\n{indent}]" + text[b:]


def _skip(text: str, i: int) -> int:
    return WS.match(text, i).end()


def _value_end(text: str, i: int) -> int:
    _, end = _decoder.raw_decode(text, i)
    return end


def _span(text: str, i: int, path: tuple[str, ...]) -> tuple[int, int]:
    """(start, end) of the value at ``path`` below the value starting at ``i``."""
    if not path:
        return i, _value_end(text, i)
    for (_, _, key), (a, _end) in _members(text, i):
        if key == path[0]:
            return _span(text, a, path[1:])
    raise WaferError(f"config.json has no {'.'.join(path)} object")


def _members(text: str, i: int) -> list[tuple[tuple[int, int, str], tuple[int, int]]]:
    """An object's members: ((key start, key end, key), (value start, value end))."""
    if text[i] != "{":
        raise WaferError("config.json: expected an object")
    out, j = [], _skip(text, i + 1)
    while text[j] != "}":
        key, k_end = _decoder.raw_decode(text, j)
        colon = _skip(text, k_end)
        v_start = _skip(text, colon + 1)
        v_end = _value_end(text, v_start)
        out.append(((j, k_end, key), (v_start, v_end)))
        j = _skip(text, v_end)
        if text[j] == ",":
            j = _skip(text, j + 1)
    return out


def _items(text: str, i: int) -> list[tuple[int, int]]:
    out, j = [], _skip(text, i + 1)
    while text[j] != "]":
        end = _value_end(text, j)
        out.append((j, end))
        j = _skip(text, end)
        if text[j] == ",":
            j = _skip(text, j + 1)
    return out


def _preceding_ws(text: str, i: int) -> str:
    j = i
    while j > 0 and text[j - 1] in " \t\n\r":
        j -= 1
    return text[j:i]


def _line_indent(text: str, i: int) -> str:
    line = text[text.rfind("\n", 0, i) + 1 : i]
    return line[: len(line) - len(line.lstrip(" \t"))]


def _indent_unit(text: str) -> str:
    for line in text.splitlines()[1:]:
        stripped = line.lstrip(" \t")
        if stripped and len(stripped) < len(line):
            return line[: len(line) - len(stripped)]
    return "  "
