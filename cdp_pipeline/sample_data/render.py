"""How source systems write the same fact differently: names, phones, addresses, times.

Each helper takes a ``random.Random`` so the caller controls determinism. They are small
and allocation-light because they run once per record (millions of times at 100 000
people).
"""

import random
from datetime import UTC, date, datetime, timedelta
from functools import cache, lru_cache

from unidecode import unidecode

from cdp_pipeline.sample_data.names import PARTICLES

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


# ---------------------------------------------------------------- time


@lru_cache(maxsize=64)
def _dst_bounds(year: int) -> tuple[int, int]:
    """EU summer time of ``year`` as UTC epoch seconds [start, end).

    The EU rule (last Sunday of March 01:00 UTC to last Sunday of October 01:00 UTC) is
    computed here instead of through zoneinfo because it is called per record and the
    rule has not changed since 1996.
    """

    def last_sunday(month: int) -> date:
        d = date(year, month, 31)
        return d - timedelta(days=(d.weekday() + 1) % 7)

    start = datetime.combine(last_sunday(3), datetime.min.time(), UTC) + timedelta(hours=1)
    end = datetime.combine(last_sunday(10), datetime.min.time(), UTC) + timedelta(hours=1)
    return int(start.timestamp()), int(end.timestamp())


@lru_cache(maxsize=65536)
def _day(day_index: int) -> date:
    # Formatting through datetime.strftime costs microseconds per call; the calendar day
    # is cached and the time of day computed with integer arithmetic instead.
    return date(1970, 1, 1) + timedelta(days=day_index)


@lru_cache(maxsize=65536)
def _ymd(day_index: int) -> str:
    return _day(day_index).isoformat()


@lru_cache(maxsize=65536)
def _dmy(day_index: int) -> str:
    d = _day(day_index)
    return f"{d.day:02d}/{d.month:02d}/{d.year}"


def brussels_offset(ts: float) -> int:
    """UTC offset of Europe/Brussels in seconds at the UTC epoch instant ``ts``."""
    start, end = _dst_bounds(_day(int(ts // 86400)).year)
    return 7200 if start <= ts < end else 3600


def local_to_utc(local_ts: float) -> float:
    """Convert a Brussels wall-clock instant (as naive epoch seconds) to UTC epoch seconds."""
    guess = local_ts - 3600
    return local_ts - brussels_offset(guess)


@cache
def _hms(seconds: int) -> str:
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h:02d}:{m:02d}:{s:02d}"


def fmt_utc_z(ts: float, millis: bool = False) -> str:
    """``2025-11-28T19:02:44Z`` (or with milliseconds, as Segment writes it)."""
    whole = int(ts // 1)
    d, rem = divmod(whole, 86400)
    if millis:
        ms = int((ts - whole) * 1000)
        return f"{_ymd(d)}T{_hms(rem)}.{ms:03d}Z"
    return f"{_ymd(d)}T{_hms(rem)}Z"


def fmt_local_iso(ts: float) -> str:
    """``2025-06-02T18:03:11+02:00``: Brussels wall time with its offset."""
    off = brussels_offset(ts)
    d, rem = divmod(int(ts // 1) + off, 86400)
    return f"{_ymd(d)}T{_hms(rem)}" + ("+02:00" if off == 7200 else "+01:00")


def fmt_local_dmy_hm(ts: float) -> str:
    """``29/11/2025 21:14``: Brussels wall time as the webshop writes it."""
    d, rem = divmod(int(ts // 1) + brussels_offset(ts), 86400)
    return f"{_dmy(d)} {_hms(rem)[:5]}"


def fmt_local_ymd_hms(ts: float) -> str:
    """``2023-02-01 09:12:00``: Brussels wall time as the e-mail provider writes it."""
    d, rem = divmod(int(ts // 1) + brussels_offset(ts), 86400)
    return f"{_ymd(d)} {_hms(rem)}"


def brussels_date(ts: float) -> date:
    """The Brussels calendar day of the UTC instant ``ts``."""
    return _day(int((ts + brussels_offset(ts)) // 86400))


@lru_cache(maxsize=65536)
def day_start_utc(d: date) -> float:
    """UTC epoch seconds of Brussels midnight starting day ``d``."""
    naive = (datetime.combine(d, datetime.min.time(), UTC) - _EPOCH).total_seconds()
    return local_to_utc(naive)


# ---------------------------------------------------------------- names


@lru_cache(maxsize=8192)
def strip_accents(name: str) -> str:
    """``Hélène`` → ``Helene``: what systems without Unicode support store."""
    return unidecode(name)


@lru_cache(maxsize=8192)
def cp1252_safe(text: str) -> str:
    """Keep what Windows-1252 can hold (é, ö, ç) and transliterate the rest (ł, ş, ı).

    The box office runs on Windows-1252, so ``Paweł`` reaches the export as ``Pawel``
    while ``Hélène`` keeps its accents.
    """
    try:
        text.encode("cp1252")
        return text
    except UnicodeEncodeError:
        return "".join(ch if _cp1252_ok(ch) else unidecode(ch) for ch in text)


def _cp1252_ok(ch: str) -> bool:
    try:
        ch.encode("cp1252")
    except UnicodeEncodeError:
        return False
    return True


@lru_cache(maxsize=8192)
def particle_variants(last: str) -> tuple[str, ...]:
    """The ways a family name with particles is written, canonical form first.

    ``Van den Broeck`` → (``Van den Broeck``, ``Vandenbroeck``, ``van den broeck``,
    ``Van Den Broeck``). Names without particles have one form.
    """
    words = last.split(" ")
    if len(words) < 2 or words[0].lower() not in PARTICLES:
        return (last,)
    glued = "".join(words)
    glued = glued[0].upper() + glued[1:].lower()
    titled = " ".join(w[0].upper() + w[1:] for w in words)
    out = [last, glued, last.lower()]
    if titled != last:
        out.append(titled)
    return tuple(out)


def has_particle(last: str) -> bool:
    """True when ``last`` starts with a particle such as ``Van`` or ``El``."""
    return len(particle_variants(last)) > 1


def typo(text: str, rng: random.Random) -> str:
    """One realistic keying error: swap, drop or double a letter, or a wrong vowel."""
    if len(text) < 4:
        return text
    i = rng.randrange(1, len(text) - 1)
    kind = rng.random()
    if kind < 0.35:
        return text[:i] + text[i + 1] + text[i] + text[i + 2 :]
    if kind < 0.6:
        return text[:i] + text[i + 1 :]
    if kind < 0.8:
        return text[:i] + text[i] + text[i:]
    vowels = "aeiou"
    if text[i] in vowels:
        return text[:i] + rng.choice(vowels.replace(text[i], "")) + text[i + 1 :]
    return text[:i] + text[i + 1] + text[i] + text[i + 2 :]


@lru_cache(maxsize=8192)
def email_part(name: str) -> str:
    """``Van den Broeck`` → ``vandenbroeck``: a name as it appears in an address."""
    return "".join(ch for ch in strip_accents(name).lower() if ch.isalnum())


def odd_case_email(email: str, rng: random.Random) -> str:
    """``An.Peeters@Telenet.be ``: capitals and stray spaces people type."""
    r = rng.random()
    local, _, domain = email.partition("@")
    if r < 0.5:
        local = ".".join(p[:1].upper() + p[1:] for p in local.split("."))
    elif r < 0.7:
        domain = domain[:1].upper() + domain[1:]
        local = local[:1].upper() + local[1:]
    elif r < 0.8:
        return email.upper()
    out = local + "@" + domain
    if rng.random() < 0.4:
        out = out + " "
    elif rng.random() < 0.15:
        out = " " + out
    return out


# ---------------------------------------------------------------- phones


def phone_format(national: str, rng: random.Random, style: int | None = None) -> str:
    """Write a Belgian number (``0476123456`` or ``031234567``) in one of the styles seen.

    Mobiles have 10 digits (04xx), Antwerp landlines 9 (03).
    """
    if style is None:
        style = rng.randrange(8)
    rest = national[1:]
    if national.startswith("04"):
        a, b, c, d = national[:4], national[4:6], national[6:8], national[8:10]
        if style == 0:
            return f"{a} {b} {c} {d}"
        if style == 1:
            return f"+32{rest}"
        if style == 2:
            return f"0032 {rest[:3]}/{b}.{c}.{d}"
        if style == 3:
            return national
        if style == 4:
            return f"+32 {rest[:3]} {b} {c} {d}"
        if style == 5:
            return f"{a}/{b}.{c}.{d}"
        if style == 6:
            return f"0032{rest}"
        return f"{a}/{national[4:]}"
    a, b, c, d = national[:2], national[2:5], national[5:7], national[7:9]
    if style in (0, 4):
        return f"{a} {b} {c} {d}"
    if style in (1, 6):
        return f"+32{rest}"
    if style == 2:
        return f"0032 {rest[:1]} {b} {c} {d}"
    if style == 3:
        return national
    return f"{a}/{b}.{c}.{d}"


# ---------------------------------------------------------------- addresses


def house_number(number: str, box: str, rng: random.Random) -> str:
    """One field for number and box, as forms collect it: ``12 bus 3``, ``12/3``, ``12b3``."""
    if not box:
        return number
    r = rng.random()
    if r < 0.4:
        return f"{number} bus {box}"
    if r < 0.7:
        return f"{number}/{box}"
    if r < 0.85:
        return f"{number}b{box}"
    return f"{number} bt {box}"
