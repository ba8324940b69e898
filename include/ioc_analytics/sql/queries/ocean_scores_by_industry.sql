-- The guide's parameterised query: the OCEAN scores of one industry, from start to end (at most 5
-- days: a month of one industry is tens of millions of score sets at full volume, past what one
-- query may scan; page through it 5 days at a time, or read ocean_trait_percentiles). Reads the
-- month partitions of those days and, within them, only the days' row groups. Scalar columns only;
-- facets and dark-side maps have their own aggregates.
-- @param industry string [A-Z][A-Za-z &-]{1,39}
-- @param start lake_date = yesterday
-- @param end lake_date = yesterday
-- @span start end 5
SELECT anonymous_user_id, assessment_id, "timestamp", openness, conscientiousness, extraversion,
  agreeableness, neuroticism, consistency, completeness, industry, role, experience
FROM ocean_scores
WHERE ((year = {{ start_year }} AND month = {{ start_month }}) OR (year = {{ end_year }} AND month = {{ end_month }}))
  AND "timestamp" >= {{ start_at }} AND "timestamp" < {{ end_before }}
  AND industry = {{industry}}
ORDER BY "timestamp", assessment_id
