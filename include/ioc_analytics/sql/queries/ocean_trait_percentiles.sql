-- OCEAN trait percentiles by industry for the month to date of one day (the month's last day
-- holds the whole month).
-- @param date lake_date = yesterday
-- @suppress users
SELECT date, month, industry, users, assessments, openness_p25, openness_p50, openness_p75,
  conscientiousness_p25, conscientiousness_p50, conscientiousness_p75, extraversion_p25,
  extraversion_p50, extraversion_p75, agreeableness_p25, agreeableness_p50, agreeableness_p75,
  neuroticism_p25, neuroticism_p50, neuroticism_p75
FROM ocean_trait_percentiles
WHERE date = {{ date }}
ORDER BY industry
