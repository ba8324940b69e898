-- Cost table: each incident the hourly cost watch flagged in the hour (a runaway query, a failure
-- burst), with what drove it; `alerted` is whether this hour's watch alerted on-call for it.
-- Written by the hourly DAG's cost_watch task (ioc_hourly_metrics, ioc_analytics.cost.monitor.watch_hour),
-- one partition per hour, replaced whole on a re-run (which alerts nothing already alerted). The
-- daily cost monitor reads the day's hours, so that an incident alerted within its hour is not
-- alerted again for the day. Partition projection is off: each hour is registered and replaced by
-- pointing it at a new version folder (ioc_analytics.lake.partitions).
-- An empty partition is an answer here (an hour without incidents), not missing data: 'ioc.empty_partitions'.
CREATE EXTERNAL TABLE IF NOT EXISTS hourly_cost_anomalies (
  workgroup string,
  kind string,
  alerted boolean,
  value double,
  baseline double,
  threshold double,
  summary string,
  explanation string
)
PARTITIONED BY (
  `date` string,
  `hour` string
)
STORED AS PARQUET
LOCATION '{{ lake_root }}/costs/hourly_cost_anomalies/'
TBLPROPERTIES (
  'parquet.compression' = 'SNAPPY',
  'ioc.empty_partitions' = 'allowed',
  'projection.enabled' = 'false',
  'projection.date.type' = 'date',
  'projection.date.format' = 'yyyy/MM/dd',
  'projection.date.range' = '2024/01/01,NOW',
  'projection.date.interval' = '1',
  'projection.date.interval.unit' = 'DAYS',
  'projection.hour.type' = 'integer',
  'projection.hour.range' = '0,23',
  'projection.hour.digits' = '2',
  'storage.location.template' = '{{ lake_root }}/costs/hourly_cost_anomalies/${date}/${hour}/'
)
