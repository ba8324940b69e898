"""Independent readers of the lake for tests: pandas straight from the Parquet files."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

TODAY = dt.datetime.now(dt.UTC).date()
RECENT_DAYS = 35
EVENTS_PER_DAY = 1500


def read_events(lake: Path) -> pd.DataFrame:
    """All assessment events with their partition values, read straight from the files.

    Independent of the engine: the partition values come from the folder names here.
    """
    import pandas as pd
    import pyarrow.parquet as pq

    frames = []
    for path in sorted((lake / "assessments").glob("*/*/*/*/*.parquet")):
        year, month, day, assessment_type = path.parts[-5:-1]
        frame = pq.read_table(path).to_pandas()
        frame["date"] = f"{year}/{month}/{day}"
        frame["assessment_type"] = assessment_type
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def read_scores(lake: Path) -> pd.DataFrame:
    import pandas as pd
    import pyarrow.parquet as pq

    frames = []
    for path in sorted((lake / "ocean_scores").glob("*/*/*.parquet")):
        frame = pq.read_table(path).to_pandas()
        frame["year"], frame["month"] = path.parts[-3], path.parts[-2]
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)
