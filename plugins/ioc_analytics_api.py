"""The IOC analytics query API, mounted in Airflow's API server at ``/api/analytics``.

``POST /api/analytics/query`` runs a named query from ``include/ioc_analytics/sql/queries/``; ``GET
/api/analytics/queries`` lists them. Authenticated by Airflow itself (see ioc_analytics.publishing.api).
"""

from airflow.plugins_manager import AirflowPlugin

from ioc_analytics.publishing.api import create_app


class IocAnalyticsApiPlugin(AirflowPlugin):
    name = "ioc_analytics_api"
    fastapi_apps = [{"app": create_app(), "url_prefix": "/api/analytics", "name": "IOC analytics query API"}]
