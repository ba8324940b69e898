-- ocean_trait_percentiles for one day: each industry's trait percentiles over the month's scores
-- up to the end of the day (month to date), so re-running any day of the month gives that day's
-- figures whatever ran since. One approximate digest per trait gives its three percentiles.
WITH digests AS (
  SELECT
    year || '/' || month AS month,
    industry,
    COUNT(*) AS assessments,
    COUNT(DISTINCT anonymous_user_id) AS users,
    approx_percentile(openness, ARRAY[0.25, 0.5, 0.75]) AS openness,
    approx_percentile(conscientiousness, ARRAY[0.25, 0.5, 0.75]) AS conscientiousness,
    approx_percentile(extraversion, ARRAY[0.25, 0.5, 0.75]) AS extraversion,
    approx_percentile(agreeableness, ARRAY[0.25, 0.5, 0.75]) AS agreeableness,
    approx_percentile(neuroticism, ARRAY[0.25, 0.5, 0.75]) AS neuroticism
  FROM ocean_scores
  WHERE year = {{ year }} AND month = {{ month }}
    AND "timestamp" >= {{ month_start }} AND "timestamp" < {{ next_day_start }}
  GROUP BY year, month, industry
)
SELECT
  month,
  industry,
  CAST(assessments AS bigint) AS assessments,
  CAST(users AS bigint) AS users,
  element_at(openness, 1) AS openness_p25,
  element_at(openness, 2) AS openness_p50,
  element_at(openness, 3) AS openness_p75,
  element_at(conscientiousness, 1) AS conscientiousness_p25,
  element_at(conscientiousness, 2) AS conscientiousness_p50,
  element_at(conscientiousness, 3) AS conscientiousness_p75,
  element_at(extraversion, 1) AS extraversion_p25,
  element_at(extraversion, 2) AS extraversion_p50,
  element_at(extraversion, 3) AS extraversion_p75,
  element_at(agreeableness, 1) AS agreeableness_p25,
  element_at(agreeableness, 2) AS agreeableness_p50,
  element_at(agreeableness, 3) AS agreeableness_p75,
  element_at(neuroticism, 1) AS neuroticism_p25,
  element_at(neuroticism, 2) AS neuroticism_p50,
  element_at(neuroticism, 3) AS neuroticism_p75
FROM digests
ORDER BY industry
