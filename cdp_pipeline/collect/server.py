"""Run the event endpoint: ``python -m cdp_pipeline.collect.server --port 8088``.

Stopping it with SIGINT or SIGTERM is safe: uvicorn stops accepting connections,
lets the requests in flight finish (each is answered only once its events are
fsynced), then the writer publishes its open files. A SIGKILL or a crash leaves
``.partial`` files that the next start recovers (cdp_pipeline/collect/writer.py).
"""

import argparse
import logging

import uvicorn

from cdp_pipeline.collect.app import create_app
from cdp_pipeline.collect.config import CollectorConfig

logger = logging.getLogger(__name__)

# Requests still running this long after a stop signal are cancelled; their clients
# got no 200 and send them again. A batch is answered in milliseconds, so 10 s only
# matters for a stuck disk.
GRACEFUL_SHUTDOWN_SECONDS = 10


def serve(host: str = "127.0.0.1", port: int = 8088) -> None:
    """Serve the Segment-compatible tracking API until stopped (configuration: environment)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    config = CollectorConfig.from_env()
    app = create_app(config)
    logger.info("event endpoint listening on http://%s:%d/v1/batch", host, port)
    uvicorn.run(
        app,
        host=host,
        port=port,
        # One line per request in the access log costs more than the request itself
        # under load; the counters on /v1/stats say what arrived.
        access_log=False,
        log_level="info",
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        # Not behind a proxy by default: context.ip comes from the SDK, never from headers.
        proxy_headers=False,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description="Segment-compatible event endpoint of the CDP.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8088)
    args = parser.parse_args()
    serve(host=args.host, port=args.port)


if __name__ == "__main__":
    main()
