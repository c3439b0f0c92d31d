"""Hashing test vectors from the documented normalisation rules of Meta and Google.

Meta, customer list / Conversions API customer information parameters: e-mail trimmed and
lower-cased; phone digits only including the country code, no ``+`` or leading zeros
(their example: ``+1 (650) 555-1212`` → ``16505551212``); names lower-case, no
punctuation, special characters UTF-8. Google Customer Match: e-mail trimmed and
lower-cased, dots before ``@gmail.com`` / ``@googlemail.com`` removed; phone in E.164.
The expected hashes are literals, so a change in the hashing itself fails too.
"""

import unicodedata

import pytest

from cdp_pipeline.activation.normalise import (
    google_email,
    google_identifiers,
    meta_city,
    meta_email,
    meta_hashed,
    meta_name,
    meta_phone,
    sha256_hex,
)

JOHN_DOE = "836f82db99121b3481011f16b49dfa5fbc714a0d1b1b9f784a1ebbbf5b39577f"
BE_MOBILE_META = "939c4bd6bb59bd77f86f17066a9d0e271836c34aad27e02b9621d56270566afc"
BE_MOBILE_E164 = "80545f053bc9d3881cd0acf64147e86bc31eba1e2296ffe81e579ac8a52387ab"
VALERY = "08e1996b5dd49e62a4b4c010d44e4345592a863bb9f8e3976219bac29417149c"
JEANPIERRE = "fbcc8fa66b9a007dc3649ee989950d38f12ed91b9f18a3d215b04ff77546dca0"


def test_sha256_is_lower_hex_of_utf8() -> None:
    assert sha256_hex("test@example.com") == (
        "973dfe463ec85785f5f95af5ba3906eedb2d931c24e69824a89ea65dba4e813b"
    )


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [(" John.Doe@Example.COM ", "john.doe@example.com"), ("\tA@B.BE\n", "a@b.be"), ("  ", None)],
)
def test_meta_email(raw: str, normalised: str | None) -> None:
    assert meta_email(raw) == normalised


@pytest.mark.parametrize(
    "raw",
    ["+32 470 12 34 56", "+32470123456", "0470 12 34 56", "0470/12.34.56", "0032 470 12 34 56"],
)
def test_meta_phone_has_country_code_no_plus_no_leading_zero(raw: str) -> None:
    assert meta_phone(raw, "BE") == "32470123456"
    assert meta_hashed("phone", raw, "BE") == BE_MOBILE_META


def test_meta_phone_documented_example() -> None:
    assert meta_phone("+1 (650) 555-1212") == "16505551212"
    assert meta_phone("not a number") is None


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        ("Mary", "mary"),
        ("Valéry", "valéry"),
        ("Vale\u0301ry", "valéry"),  # decomposed accent composes to the same bytes
        ("Jean-Pierre", "jeanpierre"),
        ("O'Brien", "obrien"),
        ("Van den Berg", "vandenberg"),
        ("Ö.", "ö"),
    ],
)
def test_meta_names_lower_case_no_punctuation_utf8(raw: str, normalised: str) -> None:
    assert meta_name(raw) == normalised


def test_meta_hash_vectors() -> None:
    assert meta_hashed("email", " John.Doe@Example.COM ") == JOHN_DOE
    assert meta_hashed("first_name", "Vale\u0301ry") == VALERY
    assert meta_hashed("first_name", "Jean-Pierre") == JEANPIERRE
    assert meta_hashed("last_name", None) == ""  # a missing column is an empty string
    assert meta_city("Sint-Niklaas") == "sintniklaas"


def test_google_email_and_phone() -> None:
    assert google_email("  Jane.Doe@GMail.com ") == "janedoe@gmail.com"
    assert google_email("jane.doe@googlemail.com") == "janedoe@googlemail.com"
    assert google_email("Jane.Doe@Example.com") == "jane.doe@example.com"
    assert google_identifiers(" John.Doe@Example.COM ", "0470 12 34 56") == [
        {"hashedEmail": JOHN_DOE},
        {"hashedPhoneNumber": BE_MOBILE_E164},
    ]
    assert google_identifiers(None, "garbage") == []


# ---------- cross-check against Meta's own SDK normaliser (facebook-business)

normalize = pytest.importorskip("facebook_business.adobjects.serverside.normalize").Normalize


@pytest.mark.parametrize(
    ("field", "sdk_field", "raw"),
    [
        ("email", "em", " John.Doe@Example.COM "),
        ("phone", "ph", "+32 470 12 34 56"),
        ("phone", "ph", "0032 470 12 34 56"),
        ("first_name", "fn", "Valéry"),
        ("last_name", "ln", "Peeters"),
    ],
)
def test_sdk_agrees_where_the_documentation_is_unambiguous(
    field: str, sdk_field: str, raw: str
) -> None:
    assert meta_hashed(field, raw) == normalize.normalize_field(sdk_field, raw)


def test_sdk_drops_the_country_code_of_a_national_belgian_number() -> None:
    # The SDK strips the trunk 0 and keeps "470123456": no country code, against the rules.
    assert normalize.normalize_field_skip_hashing("ph", "0470 12 34 56") == "470123456"
    assert meta_phone("0470 12 34 56", "BE") == "32470123456"


def test_sdk_mangles_accented_and_punctuated_names() -> None:
    decomposed = "Vale\u0301ry"
    sdk = normalize.normalize_field_skip_hashing("fn", decomposed)
    # The SDK hashes the decomposed bytes, so the same name typed two ways hashes twice.
    assert sdk != "valéry" and unicodedata.normalize("NFC", sdk) == "valéry"
    assert normalize.normalize_field("fn", decomposed) != VALERY
    assert meta_hashed("first_name", decomposed) == VALERY
    # And it keeps punctuation and spaces that the customer-list rules remove.
    assert normalize.normalize_field_skip_hashing("fn", "Jean-Pierre") == "jean-pierre"
    assert normalize.normalize_field_skip_hashing("ln", "Van den Berg") == "van den berg"
    assert meta_name("Jean-Pierre") == "jeanpierre"
