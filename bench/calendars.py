"""Benchmark: the lunar and official calendars per call, per day and per customer.

    .venv/bin/python bench/calendars.py [--customers 100000]

(Not bench/calendar.py: run as a script, that name would shadow the standard library's calendar.)

Prints microseconds per call (best of 5 rounds) for: the lunar table's first load; to_lunar,
festival and solar_term on random and on consecutive days; lunar_birthday_key and
days_to_lunar_birthday over N random birth dates (1930-2005); lunar_keys_for (a 30-day window);
the holiday file's load; is_workday, payout_date and business_days_to_maturity over random
maturities. With the `test` extra installed, lunar-python and borax conversions for comparison.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from common import microseconds_per_call  # noqa: E402
from campaign_engine.facts import lunar  # noqa: E402
from campaign_engine.facts.derived import business_days_to_maturity, payout_date  # noqa: E402
from campaign_engine.facts.official import load_holidays  # noqa: E402

D = dt.date


def line(what: str, us: float) -> None:
    print(f"  {what:<58} {us:10.2f} µs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--customers", type=int, default=100_000)
    args = parser.parse_args()
    rng = random.Random(13)

    lunar._table.cache_clear()
    start = time.perf_counter()
    lunar._table()
    print(f"lunar table first use: {(time.perf_counter() - start) * 1e3:.1f} ms")

    span = (lunar.LAST_DAY - lunar.FIRST_DAY).days
    random_days = [lunar.FIRST_DAY + dt.timedelta(days=rng.randrange(span + 1)) for _ in range(20_000)]
    consecutive = [D(2026, 1, 1) + dt.timedelta(days=i) for i in range(3650)]
    print("per call:")
    line("to_lunar, random days 1901-2099", microseconds_per_call(lunar.to_lunar, random_days))
    line("to_lunar, consecutive days", microseconds_per_call(lunar.to_lunar, consecutive))
    line("festival, random days", microseconds_per_call(lunar.festival, random_days))
    line("solar_term, random days", microseconds_per_call(lunar.solar_term, random_days))

    births = [D(1930, 1, 1) + dt.timedelta(days=rng.randrange(365 * 75)) for _ in range(args.customers)]
    today = D(2026, 3, 10)
    print(f"per customer ({args.customers} random birth dates 1930-2005):")
    line("lunar_birthday_key (the stored column)", microseconds_per_call(lunar.lunar_birthday_key, births, rounds=3))
    line("days_to_lunar_birthday", microseconds_per_call(lambda b: lunar.days_to_lunar_birthday(b, today), births, rounds=3))
    line("lunar_keys_for(today, 30) (once per rule and day)",
         microseconds_per_call(lambda t: lunar.lunar_keys_for(t, 30), consecutive[:365]))

    start = time.perf_counter()
    official = load_holidays(ROOT / "config" / "holidays.yaml")
    print(f"holiday file load (2004-2026): {(time.perf_counter() - start) * 1e3:.1f} ms")
    maturities = [D(2004, 1, 1) + dt.timedelta(days=rng.randrange((D(2026, 12, 20) - D(2004, 1, 1)).days))
                  for _ in range(20_000)]
    print("per deposit (random maturities 2004-2026):")
    line("is_workday", microseconds_per_call(official.is_workday, maturities))
    line("payout_date", microseconds_per_call(lambda m: payout_date(m, official), maturities))
    line("business_days_to_maturity (today 2026-03-10)",
         microseconds_per_call(lambda m: business_days_to_maturity(m, today, official), maturities))

    try:
        from borax.calendars.lunardate import LunarDate
        from lunar_python import Solar
    except ImportError:
        print("(lunar-python and borax not installed: no comparison)")
        return
    print("for comparison (libraries, per conversion):")
    sample = random_days[:300]
    line("lunar-python Solar.getLunar, random days",
         microseconds_per_call(lambda d: Solar.fromYmd(d.year, d.month, d.day).getLunar().getDay(), sample, rounds=1))
    line("lunar-python Solar.getLunar, consecutive days",
         microseconds_per_call(lambda d: Solar.fromYmd(d.year, d.month, d.day).getLunar().getDay(), consecutive[:300], rounds=1))
    line("borax LunarDate.from_solar, random days", microseconds_per_call(LunarDate.from_solar, random_days[:5000]))


if __name__ == "__main__":
    main()
