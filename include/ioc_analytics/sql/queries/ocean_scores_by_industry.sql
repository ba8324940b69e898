-- The guide's parameterised query: the OCEAN scores of one industry, for one month (the
-- partition filter every ocean_scores query needs). Scalar columns only; facets and dark-side
-- maps have their own aggregates.
-- @param industry string [A-Z][A-Za-z &-]{1,39}
-- @param year year = current
-- @param month month = current
SELECT anonymous_user_id, assessment_id, "timestamp", openness, conscientiousness, extraversion,
  agreeableness, neuroticism, consistency, completeness, industry, role, experience
FROM ocean_scores
WHERE year = {{ year }} AND month = {{ month }} AND industry = {{industry}}
ORDER BY "timestamp", assessment_id
