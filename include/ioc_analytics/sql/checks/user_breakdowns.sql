-- Data-quality gate for one day of user_breakdowns: each column is one check.
SELECT
  COUNT(DISTINCT dimension) = 3 AS three_dimensions,
  COUNT(*) = (
    SELECT COUNT(*) FROM (SELECT DISTINCT dimension, value FROM user_breakdowns WHERE date = {{ lake_date }})
  ) AS one_row_per_value,
  COALESCE(BOOL_AND(users <= sessions AND completed_sessions <= sessions), false) AS counts_consistent,
  COALESCE(BOOL_AND(completion_rate BETWEEN 0 AND 1), false) AS rates_between_0_and_1,
  COALESCE(SUM(sessions), -1) = 3 * (
    SELECT COUNT(*) FROM assessment_events WHERE date = {{ lake_date }}
  ) AS each_dimension_adds_up_to_the_sessions
FROM user_breakdowns
WHERE date = {{ lake_date }}
