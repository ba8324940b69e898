"""How a task finds the day it processes, and which errors fail it without a retry."""

from __future__ import annotations

import datetime as dt

import pendulum
import pytest
from airflow.sdk.exceptions import AirflowFailException

from ioc_analytics.runtime import run_day

DAY = pendulum.datetime(2024, 1, 15, tz="UTC")


def test_the_day_is_the_logical_date_in_utc():
    assert run_day({"logical_date": DAY, "data_interval_start": DAY}) == dt.date(2024, 1, 15)
    assert run_day({"logical_date": DAY.in_timezone("America/Los_Angeles")}) == dt.date(2024, 1, 15)


def test_a_run_without_a_logical_date_processes_its_data_interval():
    assert run_day({"logical_date": None, "data_interval_start": DAY}) == dt.date(2024, 1, 15)


def test_a_run_without_either_is_refused_with_what_to_do():
    with pytest.raises(AirflowFailException, match="trigger it again with a logical date"):
        run_day({"logical_date": None, "data_interval_start": None})
