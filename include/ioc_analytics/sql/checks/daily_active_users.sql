-- Data-quality gate for one day of daily_active_users: each column is one check, true when it
-- passes. The pipeline fails the run, naming every false column, before anything is exported.
SELECT
  COUNT(*) = 1 AS one_row_for_the_day,
  COALESCE(MIN(total_sessions), 0) > 0 AS has_sessions,
  COALESCE(BOOL_AND(unique_users <= total_sessions), false) AS users_not_above_sessions,
  COALESCE(BOOL_AND(completed_sessions <= total_sessions), false) AS completed_not_above_sessions,
  COALESCE(BOOL_AND(returning_users <= unique_users), false) AS returning_not_above_users,
  COALESCE(MIN(total_sessions), -1) = (
    SELECT COUNT(*) FROM assessment_events WHERE date = {{ lake_date }}
  ) AS sessions_match_source
FROM daily_active_users
WHERE date = {{ lake_date }}
