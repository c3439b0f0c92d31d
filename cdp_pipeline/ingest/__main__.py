"""`python -m cdp_pipeline.ingest reprocess SOURCE [--file FILE]`: retry quarantined rows.

After a config fix (``cdp_pipeline/config/sources.yml``) or a corrected export under the
same name, reloads the files of SOURCE that have rows in ``raw._quarantine`` (or only
FILE, a path below the landing folder or a file name) with the current config. Rows that
now convert leave the quarantine; the rest stay with their current reason. Uses the
warehouse and landing folder of the settings (CDP_WAREHOUSE, CDP_LANDING_DIR); no run of
Dagster may be writing the warehouse at the same time. The same is available in the UI as
the run config ``reprocess_quarantine: true`` of the raw/<source> asset.
"""

import argparse
import logging
import sys

import duckdb

from cdp_pipeline.ingest.config import ConfigError, load_sources_config
from cdp_pipeline.ingest.loader import reprocess_quarantine
from cdp_pipeline.settings import get_settings

logger = logging.getLogger("cdp.ingest")


def main(argv: list[str]) -> int:
    """Run one command; return the exit code."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    parser = argparse.ArgumentParser(prog="python -m cdp_pipeline.ingest")
    commands = parser.add_subparsers(dest="command", required=True)
    reprocess = commands.add_parser("reprocess", help="retry the quarantined rows of a source")
    reprocess.add_argument("source")
    reprocess.add_argument("--file", default=None)
    args = parser.parse_args(argv)
    try:
        sources = {s.name: s for s in load_sources_config()}
    except ConfigError as error:
        logger.error("%s", error)
        return 2
    if args.source not in sources:
        logger.error("unknown source %r; configured: %s", args.source, ", ".join(sorted(sources)))
        return 2
    settings = get_settings()
    con = duckdb.connect(str(settings.warehouse))
    try:
        out = reprocess_quarantine(con, sources[args.source], settings.landing_dir, args.file)
    finally:
        con.close()
    released = sum(out.released.values())
    remaining = sum(out.still_quarantined.values())
    logger.info(
        "%s: %d file(s) reprocessed, %d row(s) left the quarantine, %d remain",
        args.source,
        len(out.files),
        released,
        remaining,
    )
    return 1 if out.missing_files else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
