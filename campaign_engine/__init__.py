"""Rules-engine-driven marketing campaigns for retail banks."""

import sys

if not ((3, 11) <= sys.version_info[:2] <= (3, 12)):
    raise ImportError(
        "campaign_engine needs Python 3.11 or 3.12: its rules engine, durable-rules 2.0.28, "
        f"does not import on Python {sys.version_info.major}.{sys.version_info.minor}"
    )
