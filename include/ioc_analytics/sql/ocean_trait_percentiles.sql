-- ocean_trait_percentiles for one day: each industry's trait percentiles over the month's scores
-- up to the end of the day (month to date), so re-running any day of the month gives that day's
-- figures whatever ran since. Read from state, not from the month's score sets: the day's
-- histograms of the month so far (score_digest, one per day) add up to the month's, and each
-- percentile is the smallest score, to a tenth of a point, that at least that share of the month's
-- scores are at or below (nearest rank); users are the month's users to date (month_users).
WITH digest AS (
  SELECT industry, trait, score, SUM(assessments) AS n
  FROM score_digest
  WHERE date >= {{ month_first }} AND date <= {{ lake_date }}
  GROUP BY industry, trait, score
),
ranked AS (
  SELECT industry, trait, score,
    SUM(n) OVER (PARTITION BY industry, trait ORDER BY score ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
      AS below,
    SUM(n) OVER (PARTITION BY industry, trait) AS total
  FROM digest
  WHERE score IS NOT NULL
),
quantiles AS (
  SELECT industry,
    MIN(CASE WHEN trait = 'openness' AND below >= 0.25 * total THEN score END) AS openness_p25,
    MIN(CASE WHEN trait = 'openness' AND below >= 0.5 * total THEN score END) AS openness_p50,
    MIN(CASE WHEN trait = 'openness' AND below >= 0.75 * total THEN score END) AS openness_p75,
    MIN(CASE WHEN trait = 'conscientiousness' AND below >= 0.25 * total THEN score END) AS conscientiousness_p25,
    MIN(CASE WHEN trait = 'conscientiousness' AND below >= 0.5 * total THEN score END) AS conscientiousness_p50,
    MIN(CASE WHEN trait = 'conscientiousness' AND below >= 0.75 * total THEN score END) AS conscientiousness_p75,
    MIN(CASE WHEN trait = 'extraversion' AND below >= 0.25 * total THEN score END) AS extraversion_p25,
    MIN(CASE WHEN trait = 'extraversion' AND below >= 0.5 * total THEN score END) AS extraversion_p50,
    MIN(CASE WHEN trait = 'extraversion' AND below >= 0.75 * total THEN score END) AS extraversion_p75,
    MIN(CASE WHEN trait = 'agreeableness' AND below >= 0.25 * total THEN score END) AS agreeableness_p25,
    MIN(CASE WHEN trait = 'agreeableness' AND below >= 0.5 * total THEN score END) AS agreeableness_p50,
    MIN(CASE WHEN trait = 'agreeableness' AND below >= 0.75 * total THEN score END) AS agreeableness_p75,
    MIN(CASE WHEN trait = 'neuroticism' AND below >= 0.25 * total THEN score END) AS neuroticism_p25,
    MIN(CASE WHEN trait = 'neuroticism' AND below >= 0.5 * total THEN score END) AS neuroticism_p50,
    MIN(CASE WHEN trait = 'neuroticism' AND below >= 0.75 * total THEN score END) AS neuroticism_p75
  FROM ranked
  GROUP BY industry
),
counts AS (
  -- every score set counts once under each trait: the openness rows hold them all
  SELECT industry, substr(MIN(date), 1, 7) AS month, SUM(assessments) AS assessments
  FROM score_digest
  WHERE date >= {{ month_first }} AND date <= {{ lake_date }} AND trait = 'openness'
  GROUP BY industry
),
users AS (
  SELECT industry, COUNT(anonymous_user_id) AS users
  FROM month_users
  WHERE date = {{ lake_date }}
  GROUP BY industry
)
SELECT
  c.month,
  c.industry,
  CAST(c.assessments AS bigint) AS assessments,
  CAST(COALESCE(u.users, 0) AS bigint) AS users,
  q.openness_p25,
  q.openness_p50,
  q.openness_p75,
  q.conscientiousness_p25,
  q.conscientiousness_p50,
  q.conscientiousness_p75,
  q.extraversion_p25,
  q.extraversion_p50,
  q.extraversion_p75,
  q.agreeableness_p25,
  q.agreeableness_p50,
  q.agreeableness_p75,
  q.neuroticism_p25,
  q.neuroticism_p50,
  q.neuroticism_p75
FROM counts c
LEFT JOIN users u ON u.industry IS NOT DISTINCT FROM c.industry
LEFT JOIN quantiles q ON q.industry IS NOT DISTINCT FROM c.industry
ORDER BY c.industry
