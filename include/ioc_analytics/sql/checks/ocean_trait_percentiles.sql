-- Data-quality gate for one day of ocean_trait_percentiles: each column is one check.
SELECT
  COUNT(*) > 0 AS has_rows,
  COUNT(*) = COUNT(DISTINCT industry) AS one_row_per_industry,
  COALESCE(BOOL_AND(users BETWEEN 1 AND assessments), false) AS users_not_above_assessments,
  COALESCE(BOOL_AND(
    openness_p25 <= openness_p50 AND openness_p50 <= openness_p75
    AND conscientiousness_p25 <= conscientiousness_p50 AND conscientiousness_p50 <= conscientiousness_p75
    AND extraversion_p25 <= extraversion_p50 AND extraversion_p50 <= extraversion_p75
    AND agreeableness_p25 <= agreeableness_p50 AND agreeableness_p50 <= agreeableness_p75
    AND neuroticism_p25 <= neuroticism_p50 AND neuroticism_p50 <= neuroticism_p75
  ), false) AS percentiles_in_order,
  COALESCE(BOOL_AND(
    LEAST(openness_p25, conscientiousness_p25, extraversion_p25, agreeableness_p25, neuroticism_p25) >= 0
    AND GREATEST(openness_p75, conscientiousness_p75, extraversion_p75, agreeableness_p75, neuroticism_p75) <= 100
  ), false) AS percentiles_between_0_and_100,
  COALESCE(SUM(assessments), -1) = (
    SELECT COUNT(*) FROM ocean_scores
    WHERE year = {{ year }} AND month = {{ month }}
      AND "timestamp" >= {{ month_start }} AND "timestamp" < {{ next_day_start }}
  ) AS assessments_match_source
FROM ocean_trait_percentiles
WHERE date = {{ lake_date }}
