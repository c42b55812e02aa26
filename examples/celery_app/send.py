"""Send one run of each task and wait for them: `python -m celery_app.send`."""

from __future__ import annotations

from celery_app.tasks import app, build_report, charge_card, sync_inventory


def main() -> None:
    report = build_report.delay(5)
    charge = charge_card.delay(1999)
    inventory = sync_inventory.delay(2)
    print("build_report ->", report.get(timeout=60))
    print("charge_card ->", repr(charge.get(timeout=60, propagate=False)))
    print("sync_inventory ->", inventory.get(timeout=60), "retries")
    app.close()


if __name__ == "__main__":
    main()
