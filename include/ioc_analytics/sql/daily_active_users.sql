-- daily_active_users for one day: the row of the date's partition. Exact counts: the day's users
-- and its returning users (also active on one of the 30 days before) are the day's rows of
-- user_activity, the state that carries the 30-day look-back from day to day; the sessions are the
-- day's events. Reads one day of events and of state, however long the look-back.
WITH users AS (
  SELECT CAST(COUNT(*) AS bigint) AS unique_users, CAST(COUNT(previous_active) AS bigint) AS returning_users
  FROM user_activity
  WHERE date = {{ lake_date }} AND last_active = {{ lake_date }}
),
sessions AS (
  SELECT CAST(COUNT(*) AS bigint) AS total_sessions,
    CAST(COUNT_IF(completion_time > 0) AS bigint) AS completed_sessions
  FROM assessment_events
  WHERE date = {{ lake_date }}
)
SELECT u.unique_users, s.total_sessions, s.completed_sessions, u.returning_users
FROM users u
CROSS JOIN sessions s
