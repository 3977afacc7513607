# syntax=docker/dockerfile:1
# The service's image: `service serve`, `service relay`, `service db upgrade`... (the entry point
# is the CLI; the default command serves the API). Build: docker build -t service .

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build: the project's wheel and every dependency's, as locked -----------------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# The runtime lock (`make lock`): every dependency pinned, each download checked against its
# hashes. Its own layer, rebuilt only when the lock changes.
COPY requirements/runtime.txt ./requirements/
RUN pip wheel --wheel-dir /wheels --require-hashes -r requirements/runtime.txt
# The project's wheel, built by the locked setuptools and wheel with nothing fetched.
RUN pip install --no-index --find-links=/wheels setuptools wheel
# Only what the wheel is built from (README.md is the project's readme in pyproject.toml).
COPY pyproject.toml README.md ./
COPY service ./service
RUN pip wheel --no-index --no-deps --no-build-isolation --wheel-dir /wheels .

# --- runtime: no compiler, no source tree, no network at install time -----------------------
FROM ${PYTHON_IMAGE}
# Inside a container the ports are reached from outside it: listen on every interface.
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HOST=0.0.0.0 \
    PORT=8080 \
    RELAY_METRICS_HOST=0.0.0.0 \
    RELAY_METRICS_PORT=9101 \
    LOG_FORMAT=json
# Installed from the build stage's wheels alone (--no-index): the locked versions are the only
# ones there; the bind mount keeps them out of the image's layers. setuptools and wheel, which
# only built the project, are not dependencies of it and stay out.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels service
# A fixed, unprivileged uid/gid, so that orchestrators can check runAsNonRoot.
RUN groupadd --system --gid 10001 service \
    && useradd --system --uid 10001 --gid service --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin service
WORKDIR /app
# service.migrate finds alembic.ini in the working directory; its script_location is
# %(here)s/migrations. Owned by root: the service only reads them.
COPY alembic.ini ./
COPY migrations ./migrations
# The one writable place: the SQLite default (var/service.db) and its development secret.
RUN mkdir var && chown service:service var
USER 10001:10001
EXPOSE 8080 9101
# No HEALTHCHECK here: the same image runs the API (:8080), relays (:9101) and one-shot
# migrations, so each deployment probes what its process serves (see docker-compose.yml).
ENTRYPOINT ["service"]
CMD ["serve"]
