-- Data-quality gate for one day of dark_side_summary: each column is one check.
SELECT
  COUNT(*) = 11 AS eleven_indicators,
  COALESCE(BOOL_AND(avg_risk BETWEEN 0 AND 100), false) AS risks_between_0_and_100,
  COALESCE(BOOL_AND(high_risk_share BETWEEN 0 AND 1), false) AS shares_between_0_and_1,
  COALESCE(BOOL_AND(high_risk_assessments <= assessments), false) AS high_risk_not_above_assessments,
  COALESCE(MAX(assessments), -1) = (
    SELECT COUNT(*) FROM ocean_scores
    WHERE year = {{ year }} AND month = {{ month }}
      AND "timestamp" >= {{ day_start }} AND "timestamp" < {{ next_day_start }}
  ) AS assessments_match_source
FROM dark_side_summary
WHERE date = {{ lake_date }}
