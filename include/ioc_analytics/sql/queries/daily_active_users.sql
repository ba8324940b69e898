-- Daily active users, sessions and returning users, one row per day from start to end.
-- @param start lake_date = today-30
-- @param end lake_date = yesterday
SELECT date, unique_users, total_sessions, completed_sessions, returning_users
FROM daily_active_users
WHERE date >= {{ start }} AND date <= {{ end }}
ORDER BY date
