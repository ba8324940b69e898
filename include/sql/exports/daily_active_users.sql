-- The CSV export of one day of daily_active_users.
SELECT date, unique_users, total_sessions, completed_sessions, returning_users
FROM daily_active_users
WHERE date = {{ lake_date }}
