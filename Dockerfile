# The project's Airflow image: the official Airflow 3.3.2 image with this project's exact lock.
# --no-deps + --require-hashes: the image runs the same versions the tests ran.
FROM apache/airflow:3.3.2-python3.11
COPY --chown=airflow:root requirements.lock /opt/ioc/requirements.lock
RUN pip install --no-cache-dir --no-deps --require-hashes -r /opt/ioc/requirements.lock
COPY --chown=airflow:root pyproject.toml /opt/ioc/pyproject.toml
COPY --chown=airflow:root include /opt/ioc/include
RUN pip install --no-cache-dir --no-deps --no-build-isolation -e /opt/ioc
