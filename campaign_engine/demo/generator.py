"""Realistic demo data of a Chinese retail bank, deterministic for a seed.

Pure: no database, no I/O, no clock. Generators stream plain dicts shaped like the typed rows the
importer produces (dates, Decimals, booleans), so `store.upsert.upsert_rows` writes them as is.
Customer i's tier, AUM and risk level come from a hash of (seed, i), so the deposit and holding
generators agree with the customer generator without keeping any customer in memory.
"""

from __future__ import annotations

import datetime as dt
import random
from bisect import bisect
from calendar import monthrange
from collections.abc import Iterator, Sequence
from decimal import Decimal
from itertools import accumulate
from typing import Any

from ..facts.derived import age
from ..vocabulary import Tier, risk_rank

_M64 = (1 << 64) - 1
_UNIT = 2.0 ** -53


def _mix(x: int) -> int:
    """splitmix64 finaliser: a well-spread 64-bit hash of x."""
    x = (x + 0x9E3779B97F4A7C15) & _M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
    return x ^ (x >> 31)


def _weighted(items: Sequence[tuple[Any, float]]) -> tuple[list[Any], list[float]]:
    values = [value for value, _ in items]
    cumulative = list(accumulate(weight for _, weight in items))
    total = cumulative[-1]
    return values, [c / total for c in cumulative]


def _pick(rng: random.Random, table: tuple[list[Any], list[float]]) -> Any:
    values, cumulative = table
    return values[min(bisect(cumulative, rng.random()), len(values) - 1)]


# --------------------------------------------------------------------------- products

_PRODUCTS: tuple[dict[str, Any], ...] = (
    {"product_code": "TD3M", "name": "3个月定期存款", "type": "time_deposit", "risk_level": "R1",
     "rate": Decimal("1.10"), "min_amount": Decimal("50"), "launch_date": dt.date(2015, 1, 1)},
    {"product_code": "TD6M", "name": "6个月定期存款", "type": "time_deposit", "risk_level": "R1",
     "rate": Decimal("1.30"), "min_amount": Decimal("50"), "launch_date": dt.date(2015, 1, 1)},
    {"product_code": "TD1Y", "name": "1年定期存款", "type": "time_deposit", "risk_level": "R1",
     "rate": Decimal("1.45"), "min_amount": Decimal("50"), "launch_date": dt.date(2015, 1, 1)},
    {"product_code": "TD2Y", "name": "2年定期存款", "type": "time_deposit", "risk_level": "R1",
     "rate": Decimal("1.55"), "min_amount": Decimal("50"), "launch_date": dt.date(2015, 1, 1)},
    {"product_code": "TD3Y", "name": "3年定期存款", "type": "time_deposit", "risk_level": "R1",
     "rate": Decimal("1.75"), "min_amount": Decimal("50"), "launch_date": dt.date(2015, 1, 1)},
    {"product_code": "TD5Y", "name": "5年定期存款", "type": "time_deposit", "risk_level": "R1",
     "rate": Decimal("1.85"), "min_amount": Decimal("50"), "launch_date": dt.date(2015, 1, 1)},
    {"product_code": "FUND-BAL01", "name": "稳盈平衡混合基金", "type": "fund", "risk_level": "R3",
     "rate": None, "min_amount": Decimal("1"), "launch_date": dt.date(2019, 6, 18)},
    {"product_code": "FUND-EQ01", "name": "价值精选股票基金", "type": "fund", "risk_level": "R4",
     "rate": None, "min_amount": Decimal("1"), "launch_date": dt.date(2020, 9, 1)},
    {"product_code": "FUND-TECH01", "name": "科技创新主题基金", "type": "fund", "risk_level": "R5",
     "rate": None, "min_amount": Decimal("1"), "launch_date": dt.date(2022, 3, 15)},
    {"product_code": "WM-R2-01", "name": "安心稳健理财180天", "type": "wealth", "risk_level": "R2",
     "rate": Decimal("2.60"), "min_amount": Decimal("10000"), "launch_date": dt.date(2023, 1, 5)},
    {"product_code": "WM-R3-01", "name": "睿享增利理财1年", "type": "wealth", "risk_level": "R3",
     "rate": Decimal("3.20"), "min_amount": Decimal("10000"), "launch_date": dt.date(2024, 4, 8)},
    {"product_code": "BOND-FIN01", "name": "金融债精选", "type": "bond", "risk_level": "R2",
     "rate": Decimal("2.35"), "min_amount": Decimal("1000"), "launch_date": dt.date(2021, 11, 1)},
)


def generate_products() -> list[dict[str, Any]]:
    """The fixed demo product catalogue: time deposits, funds, wealth products and a bond."""
    return [dict(product) for product in _PRODUCTS]


# Time deposits customers open: (code, term in months, base rate, how common).
_TIME_DEPOSITS = _weighted([
    (("TD3M", 3, Decimal("1.10")), 15), (("TD6M", 6, Decimal("1.30")), 20),
    (("TD1Y", 12, Decimal("1.45")), 30), (("TD2Y", 24, Decimal("1.55")), 13),
    (("TD3Y", 36, Decimal("1.75")), 15), (("TD5Y", 60, Decimal("1.85")), 7)])
# Investment products customers may hold: (code, risk rank, minimum amount).
_INVESTMENTS = [(p["product_code"], risk_rank(p["risk_level"]) or 0, int(p["min_amount"]))
                for p in _PRODUCTS if p["type"] != "time_deposit"]

# --------------------------------------------------------------------------- customer profile

_DIAMOND, _PLATINUM, _GOLD, _REGULAR, _RESTRICTED = (t.value for t in Tier)
# Value pyramid: cumulative share of customers per tier, top first.
_TIER_CUTS = ((0.005, _DIAMOND), (0.025, _PLATINUM), (0.125, _GOLD), (0.925, _REGULAR),
              (1.0, _RESTRICTED))
# Customer risk assessments: conservative ones are the most common; "" = never assessed.
_RISK_CUTS = ((0.03, None), (0.18, "C1"), (0.48, "C2"), (0.76, "C3"), (0.92, "C4"), (1.0, "C5"))


def _tier_aum(u_tier: float, u_aum: float) -> tuple[str, int]:
    """A tier from the pyramid and an AUM in fen (1/100 yuan) matching it."""
    tier = next(name for cut, name in _TIER_CUTS if u_tier < cut)
    if tier == _DIAMOND:      # 6M .. 60M, log-uniform
        yuan = 6_000_000 * 10 ** u_aum
    elif tier == _PLATINUM:   # 1M .. 6M
        yuan = 1_000_000 * 6 ** u_aum
    elif tier == _GOLD:       # 200k .. 1M
        yuan = 200_000 * 5 ** u_aum
    elif tier == _REGULAR:    # mostly small balances, always < 200k
        yuan = 100 + 199_800 * u_aum ** 2.5
    else:                     # restricted accounts: small balances
        yuan = 50_000 * u_aum ** 3
    return tier, int(yuan * 100)


def _profile(seed: int, i: int) -> tuple[str, int, str | None]:
    """Tier, AUM in fen and risk level of customer number i, from a hash of (seed, i)."""
    h1 = _mix(_mix(seed & _M64) ^ i)
    h2 = _mix(h1)
    h3 = _mix(h2)
    tier, aum_fen = _tier_aum((h1 >> 11) * _UNIT, (h2 >> 11) * _UNIT)
    u_risk = (h3 >> 11) * _UNIT
    risk = next(level for cut, level in _RISK_CUTS if u_risk < cut)
    return tier, aum_fen, risk


def _fen(amount: int) -> Decimal:
    return Decimal(amount).scaleb(-2)


def customer_id(i: int) -> str:
    """Demo customer number i (1-based) -> 'C00000001'."""
    return f"C{i:08d}"


# --------------------------------------------------------------------------- names and places

# (surname, pinyin, relative frequency per mille), after the 2020 census.
_SURNAMES = _weighted([
    (("王", "wang"), 71.5), (("李", "li"), 70.0), (("张", "zhang"), 64.0), (("刘", "liu"), 54.0),
    (("陈", "chen"), 46.0), (("杨", "yang"), 31.0), (("黄", "huang"), 22.0), (("赵", "zhao"), 21.0),
    (("吴", "wu"), 20.0), (("周", "zhou"), 19.0), (("徐", "xu"), 15.0), (("孙", "sun"), 15.0),
    (("马", "ma"), 13.0), (("朱", "zhu"), 13.0), (("胡", "hu"), 12.0), (("郭", "guo"), 12.0),
    (("何", "he"), 12.0), (("林", "lin"), 11.0), (("高", "gao"), 11.0), (("罗", "luo"), 11.0),
    (("郑", "zheng"), 10.0), (("梁", "liang"), 10.0), (("谢", "xie"), 8.0), (("宋", "song"), 8.0),
    (("唐", "tang"), 8.0), (("许", "xu"), 7.0), (("韩", "han"), 7.0), (("冯", "feng"), 7.0),
    (("邓", "deng"), 7.0), (("曹", "cao"), 7.0), (("彭", "peng"), 6.0), (("曾", "zeng"), 6.0),
    (("肖", "xiao"), 6.0), (("田", "tian"), 6.0), (("董", "dong"), 5.0), (("袁", "yuan"), 5.0),
    (("潘", "pan"), 5.0), (("于", "yu"), 5.0), (("蒋", "jiang"), 5.0), (("蔡", "cai"), 5.0),
    (("余", "yu"), 5.0), (("杜", "du"), 5.0), (("叶", "ye"), 5.0), (("程", "cheng"), 5.0),
    (("苏", "su"), 4.0), (("魏", "wei"), 4.0), (("吕", "lv"), 4.0), (("丁", "ding"), 4.0),
    (("任", "ren"), 4.0), (("沈", "shen"), 4.0), (("姚", "yao"), 3.5), (("卢", "lu"), 3.5),
    (("钟", "zhong"), 3.0), (("姜", "jiang"), 3.0), (("崔", "cui"), 3.0), (("谭", "tan"), 3.0),
    (("陆", "lu"), 3.0), (("范", "fan"), 3.0), (("汪", "wang"), 3.0), (("廖", "liao"), 3.0),
    (("欧阳", "ouyang"), 0.6), (("司马", "sima"), 0.1), (("上官", "shangguan"), 0.1),
    (("诸葛", "zhuge"), 0.1), (("东方", "dongfang"), 0.05), (("皇甫", "huangfu"), 0.05)])

_MALE_CHARS = [
    ("伟", "wei"), ("强", "qiang"), ("磊", "lei"), ("军", "jun"), ("洋", "yang"), ("勇", "yong"),
    ("杰", "jie"), ("涛", "tao"), ("明", "ming"), ("超", "chao"), ("刚", "gang"), ("平", "ping"),
    ("辉", "hui"), ("鹏", "peng"), ("华", "hua"), ("飞", "fei"), ("鑫", "xin"), ("波", "bo"),
    ("斌", "bin"), ("宇", "yu"), ("浩", "hao"), ("凯", "kai"), ("健", "jian"), ("俊", "jun"),
    ("帆", "fan"), ("旭", "xu"), ("龙", "long"), ("建", "jian"), ("国", "guo"), ("志", "zhi"),
    ("文", "wen"), ("海", "hai"), ("峰", "feng"), ("东", "dong"), ("晨", "chen"), ("博", "bo"),
    ("轩", "xuan"), ("睿", "rui"), ("泽", "ze"), ("德", "de"), ("成", "cheng"), ("永", "yong")]
_FEMALE_CHARS = [
    ("芳", "fang"), ("娜", "na"), ("敏", "min"), ("静", "jing"), ("丽", "li"), ("艳", "yan"),
    ("娟", "juan"), ("霞", "xia"), ("秀", "xiu"), ("英", "ying"), ("玲", "ling"), ("燕", "yan"),
    ("红", "hong"), ("梅", "mei"), ("婷", "ting"), ("雪", "xue"), ("琳", "lin"), ("欣", "xin"),
    ("怡", "yi"), ("佳", "jia"), ("慧", "hui"), ("颖", "ying"), ("倩", "qian"), ("萍", "ping"),
    ("洁", "jie"), ("璐", "lu"), ("晶", "jing"), ("莉", "li"), ("雯", "wen"), ("悦", "yue"),
    ("涵", "han"), ("思", "si"), ("雨", "yu"), ("梓", "zi"), ("诗", "shi"), ("玉", "yu"),
    ("兰", "lan"), ("春", "chun"), ("琪", "qi"), ("萱", "xuan"), ("丹", "dan"), ("宁", "ning")]
_SHARED_CHARS = [("晓", "xiao"), ("子", "zi"), ("一", "yi"), ("嘉", "jia"), ("欣", "xin"),
                 ("文", "wen"), ("新", "xin"), ("家", "jia"), ("安", "an"), ("若", "ruo")]

_CITIES = _weighted([
    (("上海", ("浦东", "黄浦", "徐汇", "静安", "长宁", "闵行", "杨浦")), 16),
    (("北京", ("朝阳", "海淀", "西城", "东城", "丰台", "通州")), 15),
    (("广州", ("天河", "越秀", "海珠", "番禺", "白云")), 9),
    (("深圳", ("福田", "南山", "罗湖", "宝安", "龙岗")), 10),
    (("杭州", ("西湖", "上城", "滨江", "萧山")), 7),
    (("南京", ("鼓楼", "玄武", "建邺", "江宁")), 6),
    (("苏州", ("工业园区", "姑苏", "吴中")), 6),
    (("成都", ("锦江", "武侯", "高新", "青羊")), 7),
    (("武汉", ("江汉", "武昌", "洪山", "汉阳")), 6),
    (("重庆", ("渝中", "江北", "南岸")), 5),
    (("西安", ("雁塔", "碑林", "未央")), 4),
    (("天津", ("和平", "河西", "南开")), 5),
    (("厦门", ("思明", "湖里")), 2),
    (("青岛", ("市南", "崂山")), 2)])

# Every branch of the demo bank, in a fixed order: managers are numbered by it (generate_managers).
_BRANCHES = tuple(f"{city}分行{district}支行" for city, districts in _CITIES[0] for district in districts)
_BRANCH_INDEX = {branch: k for k, branch in enumerate(_BRANCHES)}

_MOBILE_PREFIXES = (
    "130", "131", "132", "133", "134", "135", "136", "137", "138", "139", "147", "150", "151",
    "152", "153", "155", "156", "157", "158", "159", "166", "173", "176", "177", "178", "180",
    "181", "182", "183", "184", "185", "186", "187", "188", "189", "191", "198", "199")
_EMAIL_DOMAINS = _weighted([
    ("qq.com", 35), ("163.com", 20), ("126.com", 9), ("gmail.com", 7), ("sina.com", 6),
    ("foxmail.com", 6), ("outlook.com", 6), ("hotmail.com", 5), ("139.com", 4), ("sohu.com", 2)])


def _years_before(day: dt.date, years: int) -> dt.date:
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February in a non-leap year
        return day.replace(year=day.year - years, day=28)


def _months_before(day: dt.date, months: int) -> dt.date:
    year, month = divmod(day.year * 12 + day.month - 1 - months, 12)
    return dt.date(year, month + 1, min(day.day, monthrange(year, month + 1)[1]))


def _birth_date(rng: random.Random, lowest: int, highest: int, mode: int) -> dt.date:
    """A birth date between two ordinals, ages clustered around mode; a few on 29 February."""
    if rng.random() < 0.002:
        years = [y for y in range(dt.date.fromordinal(lowest).year, dt.date.fromordinal(highest).year + 1)
                 if y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)
                 and lowest <= dt.date(y, 2, 29).toordinal() <= highest]
        if years:
            return dt.date(rng.choice(years), 2, 29)
    return dt.date.fromordinal(int(rng.triangular(lowest, highest + 1, mode)))


# Share of customers over LUNAR_AGE who celebrate their lunar birthday (农历生日) in the demo bank.
LUNAR_SHARE, LUNAR_AGE = 0.15, 55


def _birthday_calendar(seed: int, i: int, birth: dt.date, today: dt.date) -> str:
    """lunar for LUNAR_SHARE of the customers over LUNAR_AGE, from a hash of (seed, i): the
    generator's random stream (and so every other field) is the same as without it."""
    if (age(birth, today) or 0) <= LUNAR_AGE:
        return "solar"
    return "lunar" if (_mix(_mix(seed & _M64) ^ (i << 20) ^ 0x4C554E) >> 11) * _UNIT < LUNAR_SHARE else "solar"


def generate_customers(n: int, *, seed: int, today: dt.date) -> Iterator[dict[str, Any]]:
    """Stream n demo customers C00000001.. with contact data, consents, tier, AUM and risk level."""
    rng = random.Random(f"{seed}:customers")
    rand = rng.random
    lowest = _years_before(today, 91).toordinal() + 1   # aged 90 at most
    highest = _years_before(today, 18).toordinal()      # aged 18 at least
    mode = _years_before(today, 42).toordinal()
    for i in range(1, n + 1):
        tier, aum_fen, risk = _profile(seed, i)
        surname, surname_pinyin = _pick(rng, _SURNAMES)
        gender = "M" if rand() < 0.5 else "F"
        chars = _MALE_CHARS if gender == "M" else _FEMALE_CHARS
        if rand() < 0.2:
            given = [rng.choice(chars)]
        else:
            given = [rng.choice(_SHARED_CHARS if rand() < 0.25 else chars), rng.choice(chars)]
        name = surname + "".join(c for c, _ in given)
        given_pinyin = "".join(p for _, p in given)
        mobile = (rng.choice(_MOBILE_PREFIXES) + f"{rng.randrange(100_000_000):08d}"
                  if rand() < 0.97 else None)
        email = None
        if rand() < 0.60:
            domain = _pick(rng, _EMAIL_DOMAINS)
            if domain == "qq.com":
                local = str(rng.randrange(10_000, 3_000_000_000))
            else:
                style = rand()
                if style < 0.4:
                    local = f"{surname_pinyin}{given_pinyin}{rng.randrange(100)}"
                elif style < 0.7:
                    local = f"{given_pinyin}.{surname_pinyin}"
                else:
                    local = f"{surname_pinyin}_{given_pinyin}{rng.randrange(1960, 2008)}"
            email = f"{local}@{domain}"
        city, districts = _pick(rng, _CITIES)
        high = tier in (_DIAMOND, _PLATINUM, _GOLD)
        birth = _birth_date(rng, lowest, highest, mode)
        row = {
            "customer_id": customer_id(i),
            "name": name,
            "gender": gender,
            "birth_date": birth,
            "mobile": mobile,
            "email": email,
            "city": city,
            "branch": f"{city}分行{rng.choice(districts)}支行",
            "tier": tier,
            "risk_level": risk,
            "aum": _fen(aum_fen),
            "rate_sensitive": rand() < 0.30,
            "sms_consent": rand() < 0.75,
            "email_consent": rand() < 0.55,
            "do_not_contact": rand() < 0.02,
            "language": "zh" if rand() < 0.95 else "en",
            "manager_id": None,
            "birthday_calendar": _birthday_calendar(seed, i, birth, today),
        }
        # phone marketing (a manager's calls): the customers with a manager who take marketing SMS
        # (derived, not drawn: the random sequence, and so every other demo value, stays as it was)
        row["phone_consent"] = bool(row["sms_consent"]) and high
        if high:  # a manager of the customer's own branch (derived too: the random sequence is unchanged)
            row["manager_id"] = manager_of(i, row["branch"])
        yield row


# --------------------------------------------------------------------------- relationship managers

# One manager per branch for every CUSTOMERS_PER_MANAGER customers of the bank per branch: customers
# C00000001 .. C00027500 (a "round") have managers RM0001 .. RM0055 (one per branch, in _BRANCHES
# order), the next 27,500 RM0056 .. RM0110, and so on. Prefix-stable: customer i's manager does not
# depend on how many customers are generated.
CUSTOMERS_PER_MANAGER = 500
CUSTOMERS_PER_ROUND = CUSTOMERS_PER_MANAGER * len(_BRANCHES)
_MANAGER_GIVEN_NAMES = ("敏", "静", "磊", "婷", "强", "洁", "军", "晨", "佳怡", "子涵", "浩然", "欣怡", "思远", "雨桐")


def manager_of(i: int, branch: str) -> str:
    """The manager of demo customer number i (a high-tier one) of `branch`: one of that branch."""
    return f"RM{(i - 1) // CUSTOMERS_PER_ROUND * len(_BRANCHES) + _BRANCH_INDEX[branch] + 1:04d}"


def generate_managers(customers_n: int, *, seed: int) -> Iterator[dict[str, Any]]:
    """The managers generate_customers names (RM0001 ...): each of one branch (RM0001 of the first
    of _BRANCHES, one per branch per CUSTOMERS_PER_ROUND customers), a Chinese name, a day's
    capacity of 25 calls and 4 visits; one in twenty has left (inactive: their customers' tasks go
    to the branch queue)."""
    rng = random.Random(f"{seed}:managers")
    rounds = (customers_n - 1) // CUSTOMERS_PER_ROUND + 1 if customers_n > 0 else 0
    for k in range(1, rounds * len(_BRANCHES) + 1):
        surname, _ = _pick(rng, _SURNAMES)
        _, districts = _pick(rng, _CITIES)  # drawn as before, so names, mobiles and `active` stay as they were
        rng.choice(districts)
        yield {
            "manager_id": f"RM{k:04d}", "name": surname + rng.choice(_MANAGER_GIVEN_NAMES),
            "branch": _BRANCHES[(k - 1) % len(_BRANCHES)],
            "mobile": f"139{rng.randrange(10_000_000, 100_000_000)}", "email": f"rm{k:04d}@bank.example",
            "daily_call_capacity": 25, "daily_visit_capacity": 4, "active": rng.random() >= 0.05,
        }


# --------------------------------------------------------------------------- deposits, holdings

# How many time deposits a customer of a tier has: (count, weight) -- about 0.8 on average.
_DEPOSIT_COUNTS = {
    _DIAMOND: _weighted([(1, 10), (2, 25), (3, 30), (4, 20), (5, 15)]),
    _PLATINUM: _weighted([(1, 20), (2, 30), (3, 30), (4, 20)]),
    _GOLD: _weighted([(0, 10), (1, 30), (2, 30), (3, 20), (4, 10)]),
    _REGULAR: _weighted([(0, 45), (1, 40), (2, 15)]),
    _RESTRICTED: _weighted([(0, 85), (1, 10), (2, 5)]),
}
_HOLDING_SHARE = {_DIAMOND: 0.95, _PLATINUM: 0.85, _GOLD: 0.70, _REGULAR: 0.28, _RESTRICTED: 0.0}
_CARD_BINS = ("6222", "6228", "6217", "6214", "6225")


def _luhn_digit(body: str) -> str:
    total = 0
    for position, char in enumerate(reversed(body)):
        digit = int(char)
        if position % 2 == 0:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return str((10 - total % 10) % 10)


def _account_no(rng: random.Random, i: int, k: int) -> str:
    """A 16- or 19-digit card-style account number with a Luhn check digit, unique per deposit."""
    unique = f"{i % 100_000_000:08d}{k % 10}"
    if rng.random() < 0.7:
        body = rng.choice(_CARD_BINS) + unique + f"{rng.randrange(100):02d}"
    else:
        body = rng.choice(_CARD_BINS) + f"{rng.randrange(100):02d}" + unique + f"{rng.randrange(1000):03d}"
    return body + _luhn_digit(body)


def generate_deposits(customers_n: int, *, seed: int, today: dt.date) -> Iterator[dict[str, Any]]:
    """Stream the time deposits of the first customers_n demo customers (about 0.8 each)."""
    rng = random.Random(f"{seed}:deposits")
    rand = rng.random
    for i in range(1, customers_n + 1):
        tier, aum_fen, _ = _profile(seed, i)
        count = _pick(rng, _DEPOSIT_COUNTS[tier])
        for k in range(1, count + 1):
            code, months, base_rate = _pick(rng, _TIME_DEPOSITS)
            # Maturities spread over the 400 days around today; opened in the past.
            offset = rng.randint(-200, min(199, months * 28 - 1))
            maturity = today + dt.timedelta(days=offset)
            opened = _months_before(maturity, months)
            years_ago = (today - opened).days / 365
            # Older deposits were opened when rates were higher.
            rate = base_rate + Decimal(min(150, int(years_ago * 35))).scaleb(-2)
            share = aum_fen * (0.2 + 0.5 * rand()) / count
            amount_fen = max(100_000, int(share / 10_000) * 10_000)  # whole hundreds, >= 1,000
            yield {
                "deposit_id": f"D{i:08d}{k:02d}",
                "customer_id": customer_id(i),
                "product_code": code,
                "account_no": _account_no(rng, i, k),
                "amount": _fen(amount_fen),
                "rate": rate,
                "open_date": opened,
                "maturity_date": maturity,
                "auto_renew": rand() < 0.45,
            }


def generate_holdings(customers_n: int, *, seed: int) -> Iterator[dict[str, Any]]:
    """Stream investment holdings: about a quarter of customers hold 1-3 suitable products."""
    rng = random.Random(f"{seed}:holdings")
    rand = rng.random
    for i in range(1, customers_n + 1):
        tier, aum_fen, risk = _profile(seed, i)
        if rand() >= _HOLDING_SHARE[tier]:
            continue
        rank = risk_rank(risk) or 0
        eligible = [product for product in _INVESTMENTS
                    if product[1] <= rank and product[2] * 100 <= aum_fen // 3]
        if not eligible:
            continue
        picks = rng.sample(eligible, min(len(eligible), rng.choice((1, 1, 1, 2, 2, 3))))
        for code, _, minimum in picks:
            amount_fen = int(aum_fen * (0.05 + 0.25 * rand()) / 10_000) * 10_000
            yield {
                "customer_id": customer_id(i),
                "product_code": code,
                "amount": _fen(max(amount_fen, minimum * 100)),
            }
