"""Shared fixtures. PTB 22 warns unless timedelta durations are opted into; tests turn warnings
into errors, so opt in before telegram is imported anywhere."""

import os

os.environ.setdefault("PTB_TIMEDELTA", "true")
