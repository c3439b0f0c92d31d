"""Identifier normalisation and hashing exactly as the advertising platforms document it.

Meta (Custom Audiences customer list, and the Conversions API customer information
parameters): e-mail trimmed and lower-cased; phone as digits only, with the country code,
no ``+`` and no leading zeros; first and last name lower-cased with no punctuation,
special characters kept in UTF-8; postcode lower-cased without spaces; city lower-cased
with no punctuation, spaces or digits; country as the ISO 3166-1 alpha-2 code lower-cased.
Every value is then SHA-256 hashed and sent as lower-case hex.

Google Ads Customer Match: e-mail trimmed and lower-cased, and for ``gmail.com`` and
``googlemail.com`` addresses the dots of the local part removed; phone in E.164 (with the
``+``); both SHA-256 hashed as lower-case hex.

Meta's own ``facebook-business`` SDK departs from the documentation in two places (pinned in
``tests/test_activation_hashing.py``): it keeps punctuation in names and does not compose
Unicode, and it cannot add the country code to a national-format number such as a Belgian
``0470 12 34 56``. These functions follow the documentation.
"""

import hashlib
import re
import unicodedata

import phonenumbers

_NON_DIGITS = re.compile(r"\D")


def sha256_hex(value: str) -> str:
    """Lower-case hex SHA-256 of the UTF-8 bytes."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def _letters_only(value: str) -> str:
    # NFC first: "é" typed as e + combining accent must hash like the precomposed "é".
    composed = unicodedata.normalize("NFC", value.strip().lower())
    return "".join(char for char in composed if char.isalpha())


def e164(phone: str | None, default_region: str = "BE") -> str | None:
    """The number in E.164 (``+32470123456``), reading national formats in ``default_region``."""
    if not phone or not phone.strip():
        return None
    try:
        parsed = phonenumbers.parse(phone.strip(), default_region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(parsed):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def meta_email(email: str | None) -> str | None:
    if not email or not email.strip():
        return None
    return email.strip().lower()


def meta_phone(phone: str | None, default_region: str = "BE") -> str | None:
    """Digits with the country code, no ``+`` and no leading zeros (``32470123456``)."""
    number = e164(phone, default_region)
    return _NON_DIGITS.sub("", number) if number else None


def meta_name(name: str | None) -> str | None:
    """Lower-case letters only (accents kept, UTF-8), no punctuation or spaces."""
    if not name:
        return None
    return _letters_only(name) or None


def meta_postcode(postcode: str | None) -> str | None:
    if not postcode:
        return None
    return re.sub(r"\s", "", postcode.strip().lower()) or None


def meta_city(city: str | None) -> str | None:
    if not city:
        return None
    return _letters_only(city) or None


def meta_country(country: str | None) -> str | None:
    if not country:
        return None
    code = re.sub(r"[^a-z]", "", country.strip().lower())
    return code if len(code) == 2 else None


# Meta schema key per profile field, and the normaliser for it.
META_SCHEMA = {
    "email": "EMAIL",
    "phone": "PHONE",
    "first_name": "FN",
    "last_name": "LN",
    "postcode": "ZIP",
    "municipality": "CT",
}


def meta_hashed(field: str, value: str | None, default_region: str = "BE") -> str:
    """The hashed value for one schema column; Meta wants an empty string for a missing one."""
    normalisers = {
        "email": meta_email,
        "first_name": meta_name,
        "last_name": meta_name,
        "postcode": meta_postcode,
        "municipality": meta_city,
    }
    normalised = (
        meta_phone(value, default_region) if field == "phone" else normalisers[field](value)
    )
    return sha256_hex(normalised) if normalised else ""


def google_email(email: str | None) -> str | None:
    if not email or not email.strip():
        return None
    normalised = email.strip().lower()
    local, _, domain = normalised.rpartition("@")
    if local and domain in {"gmail.com", "googlemail.com"}:
        normalised = f"{local.replace('.', '')}@{domain}"
    return normalised


def google_identifiers(
    email: str | None, phone: str | None, default_region: str = "BE"
) -> list[dict[str, str]]:
    """Customer Match ``userIdentifiers`` of one member (REST/JSON field names)."""
    identifiers = []
    normalised_email = google_email(email)
    if normalised_email:
        identifiers.append({"hashedEmail": sha256_hex(normalised_email)})
    number = e164(phone, default_region)
    if number:
        identifiers.append({"hashedPhoneNumber": sha256_hex(number)})
    return identifiers
