"""Crontabs mean what they mean in cron."""

from datetime import UTC, datetime, timedelta

import pytest

from deepfake_kedro.retraining.crontab import cron_trigger

NOW = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)  # a Wednesday


@pytest.mark.parametrize(
    ("crontab", "weekday"),
    [("0 4 * * 0", 6), ("0 4 * * 7", 6), ("0 4 * * sun", 6), ("0 4 * * 1", 0)],
)
def test_day_of_week_numbers_mean_what_they_mean_in_cron(crontab, weekday):
    fire = cron_trigger(crontab, UTC).get_next_fire_time(None, NOW)
    assert fire.weekday() == weekday and fire.hour == 4


def test_day_of_week_steps_and_ranges_are_kept():
    weekdays = cron_trigger("0 4 * * 1-5", UTC)
    fires = [weekdays.get_next_fire_time(None, NOW + timedelta(days=d)).weekday() for d in range(7)]
    assert set(fires) == {0, 1, 2, 3, 4}
    with pytest.raises(ValueError, match="5 fields|need 5"):
        cron_trigger("0 4 * *", UTC)

