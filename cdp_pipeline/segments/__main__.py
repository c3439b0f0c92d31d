"""`python -m cdp_pipeline.segments compile|check`: the segment compiler from the shell.

``compile`` writes the generated segment models and var ``segments``; ``check`` exits 1
when they are out of date (for CI). The lead wires the same into ``cdp segments``.
"""

import logging
import sys

from cdp_pipeline.segments.compiler import SegmentDefinitionError, compile_segments, stale_files

logger = logging.getLogger("cdp.segments")


def main(argv: list[str]) -> int:
    """Run one command; return the exit code."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    command = argv[0] if argv else "compile"
    try:
        if command == "compile":
            changed = compile_segments()
            logger.info("%d file(s) changed", len(changed))
            for path in changed:
                logger.info("  %s", path)
            return 0
        if command == "check":
            stale = stale_files()
            for path in stale:
                logger.error("out of date: %s (run `cdp segments compile`)", path)
            return 1 if stale else 0
    except SegmentDefinitionError as error:
        logger.error("%s", error)
        return 2
    logger.error("unknown command %r (compile, check)", command)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
