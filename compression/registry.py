"""Registries: the named techniques of one kind (prune methods, quantization modes, models), each one entry
holding its name, help text, capabilities and the function that implements it. CLI choices, validation, page
help and dispatch all read the registry, so adding a technique is one entry (docs/ARCHITECTURE.md).

Import-light (no torch): an entry names its implementation as "module:attribute", imported only when it is
called, so that the CLI can validate and serve a stored result without loading the deep-learning stack."""

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, fields
from importlib import import_module
from typing import Any, Generic, TypeVar

from compression.errors import CompressionError


@dataclass(frozen=True)
class Entry:
    """A registered technique: its name, a one-line help text, and where its implementation lives."""

    name: str
    help: str
    implementation: str = ""  # "module:attribute", imported on first use; "" when dispatch needs none

    def load(self) -> Any:
        """The implementing object (a function or class), imported now."""
        module, _, attribute = self.implementation.partition(":")
        return getattr(import_module(module), attribute)

    @property
    def label(self) -> str:
        """'name — help', as select boxes show an entry."""
        return f"{self.name} — {self.help}"


E = TypeVar("E", bound=Entry)


class Registry(Generic[E]):
    """The entries of one kind, in their order. Iterating gives the names, so a registry serves as the
    `choices` of an argument or a select box; `registry[name]` gives the entry or a one-line error."""

    def __init__(self, kind: str, entries: Sequence[E], fallback: Callable[[str], E | None] | None = None) -> None:
        """`fallback(name)` finds an entry that is not registered (e.g. a model imported into the current store):
        `registry[name]` and `get` consult it; the listings (iteration, names, entries) hold registered entries."""
        self.kind = kind
        self._fallback = fallback
        self._entries = {entry.name: entry for entry in entries}
        if len(self._entries) != len(entries):
            raise ValueError(f"{kind}: two entries share a name")

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __getitem__(self, name: str) -> E:
        """The entry called `name`; a one-line CompressionError naming the choices otherwise."""
        entry = self.get(name)
        if entry is None:
            raise CompressionError(f"unknown {self.kind} '{name}': choose one of {', '.join(self)}")
        return entry

    def register(self, entry: E) -> E:
        """Add `entry` (a technique defined outside this package, e.g. in a notebook); every choice list, check
        and dispatch that reads the registry offers it from then on."""
        if entry.name in self._entries:
            raise ValueError(f"{self.kind} '{entry.name}' is registered already")
        self._entries[entry.name] = entry
        return entry

    def get(self, name: str) -> E | None:
        """The entry called `name` (registered, else found by the fallback), or None."""
        entry = self._entries.get(name)
        if entry is None and self._fallback is not None:
            entry = self._fallback(name)
        return entry

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._entries)

    @property
    def entries(self) -> tuple[E, ...]:
        return tuple(self._entries.values())

    def index(self, name: str) -> int:
        return self.names.index(name)

    def where(self, **capabilities: Any) -> tuple[str, ...]:
        """The names of the entries whose capabilities have the given values, e.g. where(structured=True)."""
        known = {f.name for f in fields(self.entries[0])}
        unknown = set(capabilities) - known
        if unknown:
            raise ValueError(f"{self.kind} entries have no capability {sorted(unknown)[0]!r}")
        return tuple(name for name, entry in self._entries.items()
                     if all(getattr(entry, key) == value for key, value in capabilities.items()))
