"""A QC hook that takes its time, so a test can kill the server mid-job."""

from __future__ import annotations

import os
import time

from trialpacs.pipeline.qc import QcVerdict, SeriesForQc


class SlowQc:
    def check(self, series: SeriesForQc) -> QcVerdict:
        time.sleep(float(os.environ.get("SLOWQC_SECONDS", "3")))
        return QcVerdict("pass")


hook = SlowQc()
