"""The one memo the dispatch code keeps its recent answers in."""

from __future__ import annotations

from typing import Any


class Memo(dict):
    """A dict of at most ``limit`` recent answers (validated parameters, plans): a call
    repeated in a loop pays for its checks once. Full, it starts over rather than evicting
    one by one (the hot lookup stays a plain dict lookup); a key that cannot be hashed (an
    array as a parameter) is not remembered."""

    __slots__ = ("limit",)

    def __init__(self, limit: int = 64) -> None:
        super().__init__()
        self.limit = limit

    def remember(self, key: Any, value: Any) -> Any:
        """value, remembered under key where key hashes."""
        if len(self) >= self.limit:
            self.clear()
        try:
            self[key] = value
        except TypeError:
            pass
        return value
