-- Data-quality gate for one day of facet_summary: each column is one check.
SELECT
  COUNT(*) = 30 AS thirty_facets,
  COUNT(DISTINCT trait) = 5 AS five_traits,
  COALESCE(BOOL_AND(avg_score BETWEEN 0 AND 100), false) AS scores_between_0_and_100,
  COALESCE(BOOL_AND(avg_responses >= 1), false) AS facets_answered,
  COALESCE(MIN(assessments) = MAX(assessments), false) AS every_facet_in_every_assessment,
  COALESCE(MAX(assessments), -1) = (
    SELECT COUNT(*) FROM ocean_scores
    WHERE year = {{ year }} AND month = {{ month }}
      AND "timestamp" >= {{ day_start }} AND "timestamp" < {{ next_day_start }}
  ) AS assessments_match_source
FROM facet_summary
WHERE date = {{ lake_date }}
