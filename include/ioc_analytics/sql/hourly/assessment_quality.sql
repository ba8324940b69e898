-- assessment_quality for one UTC hour: the hour's completed sessions by assessment type, and the
-- score sets of those assessments: written when a session completes, at most 4 hours after it starts
-- (the contract's longest session), so only the score sets written from the hour's start to 4 hours
-- after its end are read (in the hour's month partition or the next day's).
WITH completed AS (
  SELECT assessment_id, assessment_type
  FROM assessment_events
  WHERE date = {{ lake_date }}
    AND "timestamp" >= {{ hour_start }} AND "timestamp" < {{ next_hour_start }}
    AND completion_time > 0
),
scores AS (
  SELECT assessment_id, consistency, completeness
  FROM ocean_scores
  WHERE ((year = {{ year }} AND month = {{ month }}) OR (year = {{ next_year }} AND month = {{ next_month }}))
    AND "timestamp" >= {{ hour_start }} AND "timestamp" < {{ scored_until }}
)
SELECT
  c.assessment_type,
  CAST(COUNT(*) AS bigint) AS completed_sessions,
  CAST(COUNT(s.assessment_id) AS bigint) AS scored,
  AVG(s.consistency) AS avg_consistency,
  AVG(s.completeness) AS avg_completeness,
  CAST(COUNT_IF(s.consistency >= 0.7 AND s.completeness >= 0.9) AS bigint) AS reliable
FROM completed c
LEFT JOIN scores s ON s.assessment_id = c.assessment_id
GROUP BY c.assessment_type
ORDER BY c.assessment_type
