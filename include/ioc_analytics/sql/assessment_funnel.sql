-- assessment_funnel for one day, by assessment type: sessions started, completed
-- (completion_time > 0), scored (an OCEAN score set exists) and reliable (scored with
-- consistency >= 0.7 and completeness >= 0.9). A score set is written when its session completes,
-- at most 4 hours after it starts (the contract's longest session): so only the score sets written
-- from the day's start to 4 hours after its end are read, in the day's month partition or the next
-- day's (a session late on a month's last day is scored in the next month).
SELECT
  e.assessment_type,
  CAST(COUNT(DISTINCT e.anonymous_user_id) AS bigint) AS users,
  CAST(COUNT(*) AS bigint) AS started,
  CAST(COUNT_IF(e.completion_time > 0) AS bigint) AS completed,
  CAST(COUNT(s.assessment_id) AS bigint) AS scored,
  CAST(COUNT_IF(s.consistency >= 0.7 AND s.completeness >= 0.9) AS bigint) AS reliable
FROM assessment_events e
LEFT JOIN (
  SELECT assessment_id, consistency, completeness
  FROM ocean_scores
  WHERE ((year = {{ year }} AND month = {{ month }}) OR (year = {{ next_year }} AND month = {{ next_month }}))
    AND "timestamp" >= {{ day_start }} AND "timestamp" < {{ scored_until }}
) s ON e.assessment_id = s.assessment_id
WHERE e.date = {{ lake_date }}
GROUP BY e.assessment_type
ORDER BY e.assessment_type
