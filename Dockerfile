# wincc-opcua-bridge: OPC UA server in front of the WinCC REST API.
# Config at /config/bridge.yaml (volume), PKI (server certificate, trusted/rejected client certs) at /pki (volume).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY bridge ./bridge
RUN pip install . \
 && useradd --system --uid 10001 --home-dir /data --create-home bridge \
 && mkdir -p /config /pki /data/nodesets \
 && chown -R bridge /pki /data

USER bridge
WORKDIR /data
VOLUME ["/config", "/pki"]
EXPOSE 4840 8081
# /healthz answers while the process and its event loop are alive (the default health.listen 127.0.0.1:8081 is
# enough for this check; set 0.0.0.0:8081 to let Prometheus scrape /metrics from outside)
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8081/healthz', timeout=4).status == 200 else 1)"
ENTRYPOINT ["wincc-opcua-bridge"]
CMD ["run", "--config", "/config/bridge.yaml"]
