"""Normalisation of the attributes identity resolution compares.

Every function here works on one value and returns ``None`` for a value that
carries no evidence (empty, invalid). The ``*_column`` helpers apply a scalar
function to the *distinct* values of a polars column once and map the results
back: ``phonenumbers`` and ``email-validator`` cost tens of microseconds a call,
and a real delivery repeats the same e-mail or phone many times.
"""

import re
import unicodedata
from collections.abc import Callable, Iterable
from typing import Any

import phonenumbers
import polars as pl
from email_validator import EmailNotValidError, validate_email
from unidecode import unidecode

# Groups of first names that are the same person's name. The first entry is the
# canonical key every member maps to. Keys are comparison keys (see name_key).
DEFAULT_NICKNAMES: tuple[tuple[str, ...], ...] = (
    ("johannes", "jan", "johan", "hannes", "jean", "john"),
    ("elisabeth", "liesbeth", "lies", "els", "elise", "lisa", "betty", "elizabeth"),
    ("annelies", "lies", "anneliese"),
    ("anneleen", "leen"),
    ("sofie", "sophie", "sofia", "fien"),
    ("koenraad", "koen", "coen"),
    ("gerard", "geert", "gert"),
    ("nathalie", "natalie"),
    ("yasmine", "jasmine", "yasmina"),
    ("mohamed", "mohammed", "mohammad", "muhammad", "mohamad", "mo", "med"),
    ("katarzyna", "kasia", "kaska", "kasha"),
    ("bartholomeus", "bart", "bartel"),
    ("willem", "wim", "william", "willy", "pim"),
    ("jozef", "jef", "jos", "joseph", "józef", "sef"),
    ("thomas", "tom", "thom", "tommy"),
    ("alexander", "alex", "sander", "xander"),
    ("katrien", "katrijn", "catherine", "kathleen", "katelijne", "trien"),
    ("margaretha", "greet", "margriet", "griet", "margot", "gretha"),
    ("petrus", "peter", "piet", "pieter"),
    ("frans", "franciscus", "francois", "sus"),
    ("hendrik", "henk", "rik", "henri"),
    ("cornelis", "kees", "cornelius", "nelis"),
    ("johanna", "anneke", "hanne", "jo"),
    ("maria", "mia", "marie", "mieke", "ria"),
    ("aleksander", "olek", "aleks"),
    ("malgorzata", "gosia", "malgosia"),
    ("abdelkader", "kader"),
    ("yitzchak", "itzik", "yitzhak", "isaac"),
    ("mustafa", "mustapha", "mostafa"),
    ("youssef", "yousef", "youssouf", "yusuf"),
    ("fatima", "fatma", "fatiha"),
    ("christophe", "christof", "christoph", "stof"),
    ("nicolaas", "nico", "klaas", "nicolas", "niels"),
    ("stefan", "stephan", "stefaan", "steve", "steven"),
    ("dirk", "dick", "derek"),
    # Formal register forms and the everyday names people type into webshops, and
    # the usual transliterations of Arabic, Turkish, Polish, Hebrew and Yiddish names
    # in Antwerp. On 3 000 generated people, missing pairs such as Wilhelmus/Wim and
    # Rachid/Rashid were a tenth of the missed pairs between two named records.
    ("johannes", "hans"),
    ("willem", "wilhelmus"),
    ("jozef", "josephus"),
    ("cornelis", "cor"),
    ("theodoor", "theo", "theodorus"),
    ("kristof", "kris", "christof"),
    ("frederik", "frederic", "fred"),
    ("katrien", "catharina", "kathy"),
    ("anna", "an", "anneke", "anne", "ania"),
    ("chana", "hannah"),
    ("karolien", "caroline", "carolien"),
    ("evelien", "eva"),
    ("sebastien", "seb"),
    ("isabelle", "isa"),
    ("stephanie", "steph"),
    ("rachid", "rashid"),
    ("khalid", "khaled"),
    ("amine", "amin"),
    ("soufiane", "sofiane"),
    ("ilias", "ilyas"),
    ("fatima", "fadma"),
    ("khadija", "khadidja"),
    ("imane", "iman"),
    ("meryem", "maryam", "mariam"),
    ("zineb", "zainab"),
    ("ahmed", "ahmad"),
    ("mehmet", "memet"),
    ("petrus", "piotr"),
    ("tomasz", "tomek"),
    ("krzysztof", "krzysiek"),
    ("grzegorz", "grzesiek"),
    ("jakub", "kuba"),
    ("agnieszka", "aga"),
    ("magdalena", "magda"),
    ("joanna", "asia"),
    ("aleksandra", "ola"),
    ("moshe", "moishe", "mozes"),
    ("yosef", "yossi", "josef"),
    ("avraham", "avi", "abraham"),
    ("shmuel", "samuel", "sam"),
    ("yaakov", "yankel", "jacob"),
    ("aron", "aharon"),
    ("rivka", "rivky"),
    ("sarah", "suri", "sara"),
    ("esther", "esty"),
    ("leah", "lea"),
    ("miriam", "miri"),
    ("devorah", "devory"),
    ("rachel", "ruchy"),
    ("dmytro", "dima"),
    ("emmanuel", "manu"),
    ("olena", "lena"),
    ("nadiya", "nadia"),
    ("beatriz", "bia"),
)

_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "`": "'", "\u00b4": "'"})
_NON_ALNUM = re.compile(r"[^0-9a-z]+")
_SPACES = re.compile(r"\s+")


def clean_text(value: Any) -> str | None:
    """NFKC, straight apostrophes, collapsed white space; None when empty."""
    if value is None:
        return None
    text = unicodedata.normalize("NFKC", str(value)).translate(_APOSTROPHES)
    text = _SPACES.sub(" ", text).strip()
    return text or None


def name_key(value: Any, blocked: Iterable[str] = ()) -> str | None:
    """Comparison key of a name: folded diacritics, lower case, letters and digits only.

    ``Van den Broeck``, ``Vandenbroeck`` and ``van den broeck`` share the key
    ``vandenbroeck``; ``Hélène`` and ``Helene`` share ``helene``. Values listed in
    ``blocked`` (already keys, e.g. ``onbekend``) give None.
    """
    text = clean_text(value)
    if text is None:
        return None
    key = _NON_ALNUM.sub("", unidecode(text).lower())
    if not key or key in set(blocked):
        return None
    return key


class NicknameTable:
    """Maps a first-name key to the nickname groups it belongs to.

    A name can sit in several groups (``lies`` is short for Elisabeth and for
    Annelies); two names are the same name when they share a group.
    """

    def __init__(self, groups: Iterable[Iterable[str]] = DEFAULT_NICKNAMES) -> None:
        self._groups: dict[str, set[str]] = {}
        for group in groups:
            keys = [k for k in (name_key(name) for name in group) if k]
            if not keys:
                continue
            for key in keys:
                self._groups.setdefault(key, set()).add(keys[0])

    def groups(self, key: str | None) -> list[str] | None:
        """Sorted group keys of a name (the name itself when it is in no group)."""
        if key is None:
            return None
        return sorted(self._groups.get(key, {key}))

    def same(self, left: str | None, right: str | None) -> bool:
        if left is None or right is None:
            return False
        return left == right or bool(set(self.groups(left)) & set(self.groups(right)))


def email(value: Any) -> str | None:
    """Trimmed, lower-cased e-mail when its syntax is valid (no DNS look-up), else None."""
    text = clean_text(value)
    if text is None:
        return None
    text = text.replace(" ", "").lower()
    try:
        result = validate_email(text, check_deliverability=False)
    except EmailNotValidError:
        return None
    return result.normalized.lower()


def phone(value: Any, region: str = "BE") -> tuple[str, str] | None:
    """E.164 form and line type (``mobile``, ``fixed_line``, ``other``) of a phone number.

    Numbers the library calls *possible* but not *valid* (unallocated ranges in
    made-up data) are kept; their type is read from the Belgian numbering plan
    (``+324…`` with nine national digits is a mobile).
    """
    text = clean_text(value)
    if text is None:
        return None
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    national = str(number.national_number)
    if set(national) <= {"0"}:
        return None
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    kind = phonenumbers.number_type(number)
    if kind == phonenumbers.PhoneNumberType.MOBILE:
        line = "mobile"
    elif kind in (
        phonenumbers.PhoneNumberType.FIXED_LINE,
        phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE,
    ):
        line = "fixed_line"
    elif number.country_code == 32 and phonenumbers.is_valid_number(number):
        line = "other"
    elif number.country_code == 32:
        line = "mobile" if national.startswith("4") and len(national) == 9 else "fixed_line"
    else:
        line = "other"
    return e164, line


_HOUSE_WITH_BOX = re.compile(
    r"^(?P<num>\d+)\s*(?P<suffix>[a-z]?)\s*"
    r"(?:(?:bus|bte|boite|box|b)\.?\s*|/\s*|-\s*)(?P<box>[0-9a-z]+)$"
)
_HOUSE_ONLY = re.compile(r"^(?P<num>\d+)\s*(?P<suffix>[a-z]?)$")


def house_number(value: Any, box: Any = None) -> tuple[str | None, str | None]:
    """Split a house number into (number, box): ``12 bus 3``, ``12/3``, ``12b3`` → (12, 3).

    A single trailing letter without a box (``12b``) is part of the number. A
    separately delivered box wins over one parsed from the number.
    """
    text = clean_text(value)
    box_text = clean_text(box)
    box_key = _NON_ALNUM.sub("", unidecode(box_text).lower()) if box_text else None
    if text is None:
        return None, box_key or None
    text = unidecode(text).lower()
    match = _HOUSE_WITH_BOX.match(text)
    if match:
        number = match["num"].lstrip("0") + match["suffix"]
        return number or "0", box_key or match["box"].lstrip("0") or match["box"]
    match = _HOUSE_ONLY.match(text)
    if match:
        return (match["num"].lstrip("0") or "0") + match["suffix"], box_key or None
    return _NON_ALNUM.sub("", text) or None, box_key or None


def postcode(value: Any) -> str | None:
    """Belgian postcode: the four digits; other values trimmed and upper-cased."""
    text = clean_text(value)
    if text is None:
        return None
    text = re.sub(r"^(b|be)[\s-]*", "", text.lower()).upper()
    digits = re.sub(r"\s", "", text)
    return digits or None


def street_key(value: Any) -> str | None:
    """Comparison key of a street: folded, lower case, common abbreviations expanded."""
    text = clean_text(value)
    if text is None:
        return None
    text = unidecode(text).lower()
    text = re.sub(r"\bstr\.?(?=\s|$)", "straat", text)
    text = re.sub(r"\bstwg\.?(?=\s|$)", "steenweg", text)
    text = re.sub(r"\bln\.?(?=\s|$)", "laan", text)
    return _NON_ALNUM.sub("", text) or None


def map_distinct(series: pl.Series, func: Callable[[Any], Any], dtype: Any) -> pl.Series:
    """Apply ``func`` once per distinct value of ``series`` and map the results back."""
    distinct = series.drop_nulls().unique()
    lookup = {value: func(value) for value in distinct.to_list()}
    return series.replace_strict(lookup, default=None, return_dtype=dtype)
