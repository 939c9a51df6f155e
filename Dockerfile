# The Scale Mesh API and proxy: one image, two commands.
#
#   docker build -t scalemesh .
#   docker run scalemesh serve api      # the default command, on :8000
#   docker run scalemesh serve proxy    # on :8080
#   docker run scalemesh migrate        # once per release, before the new version serves
#
# Stage 1 installs the package and its pinned dependencies into a virtualenv; the final stage
# gets only that virtualenv, so pip's caches and any build tooling stay behind.

FROM python:3.11.11-slim-bookworm AS venv

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/venv
WORKDIR /src
# pyproject.toml names README.md as the package's readme: setuptools needs it to build.
COPY pyproject.toml README.md ./
COPY app ./app
COPY builder ./builder
COPY proxy ./proxy
# A regular (not editable) install: the final stage has no /src.
RUN /opt/venv/bin/pip install --no-cache-dir /src \
    && /opt/venv/bin/scalemesh --help >/dev/null


FROM python:3.11.11-slim-bookworm

# The same path as in stage 1: a virtualenv's scripts name their interpreter by absolute path.
COPY --from=venv /opt/venv /opt/venv

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    SCALEMESH_DATA_DIR=/var/lib/scalemesh

# git answers a manual deploy by branch of a repository outside the GitHub App (`git
# ls-remote`; GitHub repositories are asked through the API); ca-certificates lets it speak
# https. Only these two runtime packages: no compiler or build tool reaches this stage. DL3008
# (pin apt versions) is ignored as in builder/Dockerfile: the pinned base tag fixes the release.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends git ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && git --version

# A fixed uid, so Kubernetes' runAsNonRoot can check it and volumes can be chowned to it.
RUN groupadd --system --gid 10001 scalemesh \
    && useradd --system --uid 10001 --gid scalemesh --home-dir /var/lib/scalemesh \
        --shell /usr/sbin/nologin scalemesh \
    && install -d -o scalemesh -g scalemesh -m 0700 /var/lib/scalemesh

USER 10001:10001
WORKDIR /var/lib/scalemesh

EXPOSE 8000 8080

# One image serves either part, so try both health endpoints: a container is healthy when the
# part it runs answers 200 (an API reporting "degraded" answers 503 and counts as unhealthy).
# Python's urllib, because the slim image has no curl (this stage installs only git).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request\nfor url in ('http://127.0.0.1:8000/health', 'http://127.0.0.1:8080/_scalemesh/health'):\n    try:\n        urllib.request.urlopen(url, timeout=2)\n    except Exception:\n        continue\n    sys.exit(0)\nsys.exit(1)"]

ENTRYPOINT ["scalemesh"]
CMD ["serve", "api"]
