"""The `schedule:` section: the sync interval, the nightly rescore and the time zone it runs in."""

from __future__ import annotations

import re
from datetime import UTC
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.cron import CronTrigger

from sync.config.checks.problems import Problems
from sync.config.schema import FormsModel, ScheduleModel


def check_schedule(p: Problems, schedule: ScheduleModel) -> None:
    if parse_duration(schedule.every) is None:
        p.error(("schedule", "every"), "must be a duration such as 15m, 1h, 90s or 1d")
    try:
        zone = ZoneInfo(schedule.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        p.error(("schedule", "timezone"), f"unknown time zone {schedule.timezone!r}")
        zone = None
    if schedule.rescore is not None:
        try:
            CronTrigger.from_crontab(schedule.rescore, timezone=zone or UTC)
        except ValueError as exc:
            p.error(("schedule", "rescore"), f"not a valid cron expression: {exc}")


def check_poll_overlap(p: Problems, forms: FormsModel) -> None:
    """The form poll's overlap: a duration (seconds to a minute is HubSpot's usual search lag)."""
    if parse_duration(forms.poll_overlap) is None:
        p.error(("forms", "poll_overlap"), "must be a duration such as 2m or 90s")


def parse_duration(text: str) -> int | None:
    """Seconds in '15m', '1h', '90s', '1d' (or None)."""
    found = re.fullmatch(r"\s*(\d+)\s*([smhd])\s*", text)
    if not found or int(found.group(1)) == 0:
        return None
    return int(found.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[found.group(2)]
