"""Start the marketer UI: ``cdp ui`` and ``make dev`` call ``serve``."""

import logging

import uvicorn

from cdp_pipeline.ui.app import create_app

logger = logging.getLogger(__name__)


def serve(host: str = "127.0.0.1", port: int = 8080) -> None:
    """Serve the UI until interrupted; settings come from the environment (CDP_WAREHOUSE…)."""
    logger.info("Marketer UI on http://%s:%d", host, port)
    uvicorn.run(create_app(), host=host, port=port, log_level="info")
