# The project's Airflow image: the official Airflow 3.3.2 image, this project's exact lock, and the
# project installed from its wheel (the SQL, DDL and dashboard template are package data), with the
# DAG files and the plugin in Airflow's folders. Build: docker build -t ioc-analytics-airflow .

# 1. The wheel, built from the repository's pyproject.toml and package.
FROM apache/airflow:3.3.2-python3.11 AS wheel
COPY --chown=airflow:root pyproject.toml requirements.txt /opt/airflow/build/
COPY --chown=airflow:root include /opt/airflow/build/include
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /opt/airflow/dist /opt/airflow/build

# 2. The image: --no-deps + --require-hashes, so it runs the same versions the tests ran.
FROM apache/airflow:3.3.2-python3.11
COPY --chown=airflow:root requirements.lock /opt/ioc/requirements.lock
RUN pip install --no-cache-dir --no-deps --require-hashes -r /opt/ioc/requirements.lock
COPY --from=wheel /opt/airflow/dist/ /opt/ioc/dist/
RUN pip install --no-cache-dir --no-deps /opt/ioc/dist/ioc_analytics-*.whl
COPY --chown=airflow:root dags /opt/airflow/dags
COPY --chown=airflow:root plugins /opt/airflow/plugins
