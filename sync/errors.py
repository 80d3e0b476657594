"""The error classes of leadsync; each says what the caller should do next.

- ConfigError: the operator must fix a config file; nothing runs for that portal.
- FatalError: stop this portal's cycle (daily limit); do not retry now.
  BudgetExhaustedError: a FatalError for the day's API budget (our share of it) being spent: wait for tomorrow.
  PausedError: a FatalError that needs an operator (a refused token) before the portal runs again.
    WrongPortalError: a PausedError: the token belongs to another portal than the file names.
  UnownedWriteError: a FatalError: a write of a property leadsync does not own, or before the portal's
    identity was checked, refused before anything is sent.
- RetriableError: a passing fault; the same call may succeed later.
- SkippableRecordError: one record is bad; report it, skip it, go on with the rest.
- StoppedError: a stop was asked for (SIGTERM, SIGINT, a lost lease) during a wait: the run ends as interrupted.
  LeaseLostError: a StoppedError: the portal's lease moved on (the run's fence is stale): nothing more is sent or
    recorded, and the run ends as lease_lost.
"""

from __future__ import annotations

from dataclasses import dataclass


class SyncError(Exception):
    """Base class of every error leadsync raises on purpose."""


@dataclass(frozen=True)
class ConfigProblem:
    """One problem in one config file: where it is and what is wrong."""

    file: str
    line: int | None
    path: str
    message: str

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class ConfigError(SyncError):
    """A config file is invalid; `problems` lists every problem found."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class FatalError(SyncError):
    """Stop the current portal's work; retrying now would not help."""


class BudgetExhaustedError(FatalError):
    """The day's API budget is spent (the reserve for other integrations reached, or HubSpot's DAILY 429):
    nothing more runs for this portal until the next day."""


class PausedError(FatalError):
    """The portal needs an operator (HubSpot refused its token): nothing runs for it until then."""


class WrongPortalError(PausedError):
    """The token belongs to another HubSpot portal than the one the file names: nothing is written."""

    def __init__(self, token_portal: int, config_portal: int) -> None:
        self.token_portal = token_portal
        self.config_portal = config_portal
        super().__init__(
            f"wrong portal: the token belongs to portal {token_portal} but the file names portal {config_portal} "
            "(portal.id): nothing was written; fix portal.id or token_env"
        )


class LiveCheckError(PausedError):
    """The portal file does not fit the portal (a property, stage or list it names is not there): the service
    runs nothing for it until the file is fixed and reloaded."""


class UnownedWriteError(FatalError):
    """A write leadsync must not send (a property it does not own, or a portal not yet identified)."""


class RetriableError(SyncError):
    """A passing fault: the same operation may succeed if tried again later."""


class SkippableRecordError(SyncError):
    """One input record is unusable; it is reported and skipped, the rest go on."""

    def __init__(self, record: str, reason: str) -> None:
        self.record = record
        self.reason = reason
        super().__init__(f"{record}: {reason}")


class StoppedError(SyncError):
    """A stop was asked for while a call waited to be retried: the run ends as interrupted, not failed.

    Whatever was in flight is still in the outbox, so the next run finishes it."""


class LeaseLostError(StoppedError):
    """The run's fence is stale: another replica took the portal's lease (or it expired) while this one ran.

    Raised before a batch is sent and inside the transaction that would record it: nothing is sent or recorded
    under a stale fence; the run ends as lease_lost and the holder of the new lease finishes the outbox."""

    def __init__(self, portal_id: int, epoch: int, where: str) -> None:
        self.portal_id = portal_id
        self.epoch = epoch
        super().__init__(
            f"lease lost: portal {portal_id}'s lease is no longer epoch {epoch} of this replica ({where}); "
            "nothing more was sent or recorded by this run"
        )
