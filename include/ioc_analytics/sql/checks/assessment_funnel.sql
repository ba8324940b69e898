-- Data-quality gate for one day of assessment_funnel: each column is one check.
SELECT
  COUNT(*) > 0 AS has_rows,
  COUNT(*) = COUNT(DISTINCT assessment_type) AS one_row_per_type,
  COALESCE(BOOL_AND(started >= completed AND completed >= scored AND scored >= reliable), false)
    AS stages_narrow,
  COALESCE(BOOL_AND(users BETWEEN 1 AND started), false) AS users_not_above_sessions,
  COALESCE(SUM(started), -1) = (
    SELECT COUNT(*) FROM assessment_events WHERE date = {{ lake_date }}
  ) AS started_matches_source
FROM assessment_funnel
WHERE date = {{ lake_date }}
