"""The standalone runner: an application's jobs run on schedule, every run recorded.

```python
from chronos_core.runner import ChronosRunner

runner = ChronosRunner(api_key="chr_…")

@runner.job("reports", schedule="0 * * * *", timeout=300, retries=2)
def reports() -> None: ...

runner.run_forever()   # or runner.start() to run in the background
```
"""

from chronos_core.runner._clock import Clock, ManualClock, SystemClock
from chronos_core.runner._execution import Admission
from chronos_core.runner._policy import JobPolicy, Overlap
from chronos_core.runner._runner import ChronosRunner, RunnerMode
from chronos_core.runner._schedule import CronSchedule

__all__ = [
    "Admission",
    "ChronosRunner",
    "Clock",
    "CronSchedule",
    "JobPolicy",
    "ManualClock",
    "Overlap",
    "RunnerMode",
    "SystemClock",
]
