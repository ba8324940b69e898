-- Data-quality gate for one day of completion_rates: each column is one check, true when it passes.
SELECT
  COUNT(*) > 0 AS has_rows,
  COUNT(*) = (
    SELECT COUNT(*) FROM (SELECT DISTINCT device, assessment_type FROM completion_rates WHERE date = {{ lake_date }})
  ) AS one_row_per_device_and_type,
  COALESCE(BOOL_AND(completed_sessions <= total_sessions), false) AS completed_not_above_total,
  COALESCE(BOOL_AND(users BETWEEN 1 AND total_sessions), false) AS users_not_above_sessions,
  COALESCE(BOOL_AND(completion_rate BETWEEN 0 AND 1), false) AS rates_between_0_and_1,
  COALESCE(BOOL_AND(avg_completion_time_s IS NULL OR avg_completion_time_s > 0), false) AS times_positive,
  COALESCE(SUM(total_sessions), -1) = (
    SELECT COUNT(*) FROM assessment_events WHERE date = {{ lake_date }}
  ) AS sessions_match_source
FROM completion_rates
WHERE date = {{ lake_date }}
