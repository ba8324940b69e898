-- ocean_trait_percentiles for one day: each industry's trait percentiles over the month's scores
-- up to the end of the day (month to date), so re-running any day of the month gives that day's
-- figures whatever ran since.
SELECT
  year || '/' || month AS month,
  industry,
  CAST(COUNT(*) AS bigint) AS assessments,
  approx_percentile(openness, 0.25) AS openness_p25,
  approx_percentile(openness, 0.50) AS openness_p50,
  approx_percentile(openness, 0.75) AS openness_p75,
  approx_percentile(conscientiousness, 0.25) AS conscientiousness_p25,
  approx_percentile(conscientiousness, 0.50) AS conscientiousness_p50,
  approx_percentile(conscientiousness, 0.75) AS conscientiousness_p75,
  approx_percentile(extraversion, 0.25) AS extraversion_p25,
  approx_percentile(extraversion, 0.50) AS extraversion_p50,
  approx_percentile(extraversion, 0.75) AS extraversion_p75,
  approx_percentile(agreeableness, 0.25) AS agreeableness_p25,
  approx_percentile(agreeableness, 0.50) AS agreeableness_p50,
  approx_percentile(agreeableness, 0.75) AS agreeableness_p75,
  approx_percentile(neuroticism, 0.25) AS neuroticism_p25,
  approx_percentile(neuroticism, 0.50) AS neuroticism_p50,
  approx_percentile(neuroticism, 0.75) AS neuroticism_p75
FROM ocean_scores
WHERE year = {{ year }} AND month = {{ month }} AND "timestamp" < {{ next_day_start }}
GROUP BY year, month, industry
ORDER BY industry
