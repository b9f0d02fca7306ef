"""What crosses between a step that waits, the engine and a kind of wait, typed.

A step asks the engine to park an entity with a `WaitRequest`: one dataclass per kind of
wait, whose `kind` names it (`ReviewRequest` in `workflows/steps/review.py` is "review"),
so a step cannot ask for a kind by a misspelt string; the engine refuses a request whose
kind it does not have when the step asks (`StepEngine.wait`), inside the step's guard.
Once the wait is resolved, the kind hands the engine a `Resolution`: how the entity goes on.
Both are stored as JSON (`stored()`) and read back with `of()`.
"""

from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar, Literal, Self

from workflows.usage import ZERO, Usage

NO_OUTPUT = object()  # a resolution that leaves the step's output as it is


@dataclass(frozen=True)
class WaitRequest:
    """What a step asks a kind of wait for. Subclasses are dataclasses naming their `kind`."""

    kind: ClassVar[str]

    def stored(self) -> dict:
        return asdict(self)

    @classmethod
    def of(cls, stored: dict) -> Self:
        names = {each.name for each in fields(cls)}
        return cls(**{key: value for key, value in stored.items() if key in names})


@dataclass(frozen=True)
class Resolution:
    """How a resolved wait's entity goes on, in the engine's terms.

    `outcome`: "continue" (on to the next step), "stop" (its item `skipped`) or "fail"
    (with `error`). On "continue", `data`'s top-level keys are merged into the working copy
    and `set`'s field paths set in it; `output` is the step's output (`steps.<id>.output`)
    unless NO_OUTPUT, and `set_from_output` sets field paths to values of the output, by
    key (`{"translation": "data"}`), so a value that is both is stored once (an event's
    `data`, in every wait it wakes). `usage` is what the wait's own model calls used (a
    provider batch's), `calls` how many calls that was (kept beside the usage, per step, for
    estimates), `log` a line for the run's log, `decided_by` the user who decided (a
    review). Stored, the usage keeps its stored shape with `calls` in it, as the entity's
    usage keeps it."""

    outcome: Literal["continue", "stop", "fail"]
    data: dict = field(default_factory=dict)
    set: dict = field(default_factory=dict)
    output: Any = NO_OUTPUT
    set_from_output: dict[str, str] = field(default_factory=dict)
    usage: Usage = ZERO
    calls: int = 0
    error: str = ""
    log: str = ""
    decided_by: Any = None

    def stored(self) -> dict:
        stored: dict[str, Any] = {"outcome": self.outcome}
        if self.data:
            stored["data"] = self.data
        if self.set:
            stored["set"] = self.set
        if self.output is not NO_OUTPUT:
            stored["output"] = self.output
        if self.set_from_output:
            stored["setFromOutput"] = self.set_from_output
        if self.usage or self.calls:
            calls = {"calls": self.calls} if self.calls else {}
            stored["usage"] = {**self.usage.stored(), **calls}
        for key, value in (("error", self.error), ("log", self.log)):
            if value:
                stored[key] = value
        if self.decided_by is not None:
            stored["decidedBy"] = self.decided_by
        return stored

    @classmethod
    def of(cls, stored: dict) -> "Resolution":
        return cls(
            outcome=stored["outcome"],
            data=stored.get("data") or {},
            set=stored.get("set") or {},
            output=stored.get("output", NO_OUTPUT),
            set_from_output=stored.get("setFromOutput") or {},
            usage=Usage.of(stored.get("usage")),
            calls=int((stored.get("usage") or {}).get("calls") or 0),
            error=stored.get("error") or "",
            log=stored.get("log") or "",
            decided_by=stored.get("decidedBy"),
        )
