"""Who may see what: a Scope is the set of CSUs a caller may see, applied inside the engine's SQL.

Pages never filter data themselves; every engine read takes a Scope, so a CSU user cannot reach
another CSU's rows through any page, deep link, export or CLI call.
"""
from __future__ import annotations

from dataclasses import dataclass

from .errors import NotAllowed


class ScopeError(NotAllowed):
    """A request named a CSU the caller may not see. The message is safe to show to the user."""


@dataclass(frozen=True)
class Scope:
    """``csus`` None means the whole trust; otherwise only those CSU codes."""
    csus: frozenset[str] | None = None
    label: str = "Whole trust"

    @classmethod
    def trust(cls) -> Scope:
        return cls(None, "Whole trust")

    @classmethod
    def of(cls, *csus: str) -> Scope:
        codes = frozenset(c for c in csus if c)
        return cls(codes, "CSU " + ", ".join(sorted(codes)))

    @property
    def is_trust(self) -> bool:
        return self.csus is None

    def allows(self, csu_code: str) -> bool:
        return self.csus is None or csu_code in self.csus

    def check(self, csu_code: str | None) -> None:
        """Raise ScopeError when ``csu_code`` is named and outside the scope."""
        if csu_code and not self.allows(csu_code):
            raise ScopeError(f"CSU {csu_code} is not available to you.")

    def narrow(self, csu_code: str | None) -> Scope:
        """This scope cut down to one CSU, for a view of one CSU (None: unchanged). Raises
        ScopeError when the CSU is outside it, so a link cannot widen what a user sees."""
        if not csu_code:
            return self
        self.check(csu_code)
        return Scope.of(csu_code)

    def sql_params(self) -> dict:
        """Parameters for the engine's ``($all_csus OR list_contains($csus, csu_code))`` filter."""
        return {"all_csus": self.csus is None, "csus": sorted(self.csus or ())}


def scope_filter(column: str = "csu_code") -> str:
    """SQL keeping rows whose ``column`` is in the scope (parameters from Scope.sql_params).
    ``column`` is always a constant of the engine, never user input."""
    return f"($all_csus OR list_contains($csus, {column}))"


SCOPE_FILTER = scope_filter()
