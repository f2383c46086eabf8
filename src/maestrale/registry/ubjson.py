"""A bounded UBJSON reader (the subset XGBoost writes), so a model can be checked before XGBoost parses it.

Every declared length is checked against the bytes that remain, so a crafted count can neither make
us allocate more than the input's size nor read past its end; nesting is capped.

>>> decode(b"{i\\x01aU\\x05}")
{'a': 5}
"""

from __future__ import annotations

from typing import Any

import numpy as np

MAX_DEPTH = 64
_INTS = {b"i": ">i1", b"U": ">u1", b"I": ">i2", b"l": ">i4", b"L": ">i8", b"d": ">f4", b"D": ">f8"}


class UBJSONError(ValueError):
    """The bytes are not well-formed UBJSON (the message says where)."""


def decode(data: bytes) -> Any:
    """Decode one UBJSON value that spans all of `data`; typed numeric arrays become numpy arrays."""
    reader = _Reader(memoryview(data))
    value = reader.value(reader.marker(), 0)
    if reader.pos != len(data):
        raise UBJSONError(f"{len(data) - reader.pos} bytes after the end of the document")
    return value


class _Reader:
    def __init__(self, buf: memoryview) -> None:
        self.buf, self.pos = buf, 0

    def take(self, n: int) -> memoryview:
        if n < 0 or self.pos + n > len(self.buf):
            raise UBJSONError(f"needs {n} bytes at offset {self.pos}, {len(self.buf) - self.pos} left")
        out = self.buf[self.pos : self.pos + n]
        self.pos += n
        return out

    def marker(self) -> bytes:
        while True:
            m = bytes(self.take(1))
            if m != b"N":  # no-op padding
                return m

    def integer(self, m: bytes) -> int:
        if m not in _INTS or m in (b"d", b"D"):
            raise UBJSONError(f"expected an integer type at offset {self.pos}, got {m!r}")
        dtype = np.dtype(_INTS[m])
        return int(np.frombuffer(self.take(dtype.itemsize), dtype)[0])

    def string(self) -> str:
        n = self.integer(self.marker())
        try:
            return bytes(self.take(n)).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise UBJSONError(f"string at offset {self.pos} is not UTF-8") from exc

    def value(self, m: bytes, depth: int) -> Any:
        if m in _INTS:
            dtype = np.dtype(_INTS[m])
            return np.frombuffer(self.take(dtype.itemsize), dtype)[0].item()
        simple = {b"Z": None, b"T": True, b"F": False}
        if m in simple:
            return simple[m]
        if m in (b"S", b"H"):
            return self.string()
        if m == b"C":
            return bytes(self.take(1)).decode("latin-1")
        if depth >= MAX_DEPTH:
            raise UBJSONError(f"nesting deeper than {MAX_DEPTH} at offset {self.pos}")
        if m == b"[":
            return self.array(depth + 1)
        if m == b"{":
            return self.object(depth + 1)
        raise UBJSONError(f"unknown type marker {m!r} at offset {self.pos - 1}")

    def header(self) -> tuple[bytes | None, int | None]:
        """The optional `$type#count` of a container (a count bounded by the bytes left)."""
        typ = count = None
        if self.buf[self.pos : self.pos + 1] == b"$":
            self.take(1)
            typ = bytes(self.take(1))
        if self.buf[self.pos : self.pos + 1] == b"#":
            self.take(1)
            count = self.integer(self.marker())
            if count < 0 or count > len(self.buf) - self.pos:
                raise UBJSONError(f"container of {count} items at offset {self.pos} exceeds the input")
        elif typ is not None:
            raise UBJSONError(f"typed container without a count at offset {self.pos}")
        return typ, count

    def array(self, depth: int) -> Any:
        typ, count = self.header()
        if typ in _INTS and count is not None:
            dtype = np.dtype(_INTS[typ])
            return np.frombuffer(self.take(count * dtype.itemsize), dtype).astype(dtype.newbyteorder("="))
        out: list[Any] = []
        while count is None or len(out) < count:
            m = typ or self.marker()
            if count is None and m == b"]":
                return out
            out.append(self.value(m, depth))
        return out

    def object(self, depth: int) -> dict[str, Any]:
        typ, count = self.header()
        out: dict[str, Any] = {}
        while count is None or len(out) < count:
            if count is None and self.buf[self.pos : self.pos + 1] == b"}":
                self.take(1)
                return out
            key = self.string()
            if key in out:
                raise UBJSONError(f"duplicate key {key!r} at offset {self.pos}")
            out[key] = self.value(typ or self.marker(), depth)
        return out


def decode_json_strict(data: bytes) -> Any:
    """Decode JSON refusing duplicate keys and NaN literals (parsers disagree on both)."""
    import json

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in items:
            if k in out:
                raise UBJSONError(f"duplicate key {k!r}")
            out[k] = v
        return out

    def constant(name: str) -> Any:
        raise UBJSONError(f"non-standard JSON constant {name}")

    try:
        return json.loads(data, object_pairs_hook=pairs, parse_constant=constant)
    except (ValueError, RecursionError) as exc:
        raise UBJSONError(f"not valid JSON: {exc}") from None
