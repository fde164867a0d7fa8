"""What is wrong with a configuration: one ConfigProblem per violated rule, all of them raised together."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class ConfigProblem:
    """One violated rule, naming the object (kind, name), the field path, the offending value and the rule."""

    kind: str
    name: str
    field: str
    value: str | None
    rule: str
    position: int | None = None  # index of the object in the input; identifies objects without a name
    quote: bool = True  # False when `value` is JSON of a non-string (a number, a list), shown as is

    def __str__(self) -> str:
        if self.name:
            who = f'{self.kind} "{self.name}"'
        elif self.position is not None:
            who = f"{self.kind} (unnamed, object #{self.position + 1})"
        else:
            who = f"{self.kind} (unnamed)"
        if self.value is None:
            where = self.field
        elif self.quote:
            where = f'{self.field} "{self.value}"'
        else:
            where = f"{self.field} {self.value}"
        return f"{who}: {where}: {self.rule}"


class ConfigError(ValueError):
    """The configuration is invalid; `.problems` lists every problem found, not only the first."""

    def __init__(self, problems: Iterable[ConfigProblem]) -> None:
        self.problems: list[ConfigProblem] = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))

    def __str__(self) -> str:
        count = len(self.problems)
        head = f"invalid metallb.io configuration ({count} problem{'s' if count != 1 else ''})"
        return head + "".join(f"\n  {p}" for p in self.problems)
