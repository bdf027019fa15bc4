"""Crontabs as cron means them: the one parser used by the schedule and by its config check."""

from __future__ import annotations

import re
from typing import Any

from apscheduler.triggers.cron import CronTrigger

_DAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun")


def cron_trigger(crontab: str, timezone: Any) -> CronTrigger:
    """A trigger for a standard 5-field crontab, with cron's day-of-week numbers.

    APScheduler 3 reads day-of-week numbers as 0 = Monday, while cron means 0 (and 7) =
    Sunday: ``0 4 * * 0`` would run on Mondays. Numbers in that field are turned into day
    names first, so a crontab means here what it means in ``crontab -e``.

    Raises:
        ValueError: if the crontab is not 5 fields or a day number is above 7.
    """
    fields = crontab.split()
    if len(fields) != 5:
        raise ValueError(f"wrong number of fields in crontab {crontab!r}: got {len(fields)}, need 5")

    def name(match: re.Match[str]) -> str:
        number = int(match.group(1))
        if number > 7:
            raise ValueError(f"day of week {number} in crontab {crontab!r} is not 0-7")
        return _DAY_NAMES[number]

    fields[4] = re.sub(r"(?<![/\d])(\d+)", name, fields[4])
    return CronTrigger.from_crontab(" ".join(fields), timezone=timezone)
