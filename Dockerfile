# wincc-opcua-bridge: OPC UA server in front of the WinCC REST API.
#   docker run -p 4840:4840 -v ./config:/config:ro -v bridge-pki:/pki -v bridge-nodesets:/nodesets IMAGE
# Volumes: /config (bridge.yaml), /pki (server certificate and key, trusted/rejected client certificates: the
# default opcua.pki_dir ./pki), /nodesets (the browse snapshot served while WinCC is unreachable: the default
# wincc.browse_snapshot nodesets/last-browse.xml). Set opcua.public_hostname to the name clients use for the host.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1

# The same `pip install .` the tests use (bridge/demo.yaml comes along as package data); the source is removed
# afterwards, so only the installed package runs. Relative paths in the config resolve in the working directory
# /data, where two links put the defaults' files (./pki, nodesets/...) in the volumes.
COPY pyproject.toml README.md /tmp/src/
COPY bridge /tmp/src/bridge
RUN pip install /tmp/src \
 && rm -rf /tmp/src \
 && groupadd --system --gid 10001 bridge \
 && useradd --system --uid 10001 --gid bridge --home-dir /data --no-create-home --shell /usr/sbin/nologin bridge \
 && mkdir -p /config /pki /nodesets /data \
 && chown bridge:bridge /pki /nodesets /data \
 && ln -s /pki /data/pki \
 && ln -s /nodesets /data/nodesets

# numeric, so a runtime that enforces non-root (Kubernetes runAsNonRoot) can tell without reading /etc/passwd
USER 10001:10001
WORKDIR /data
VOLUME ["/config", "/pki", "/nodesets"]
EXPOSE 4840 8081
# /healthz answers while the process and its event loop are alive (the default health.listen 127.0.0.1:8081 is
# enough for this check; set 0.0.0.0:8081 to let Prometheus scrape /metrics from outside)
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8081/healthz', timeout=4).status == 200 else 1)"]
ENTRYPOINT ["wincc-opcua-bridge"]
CMD ["run", "--config", "/config/bridge.yaml"]
