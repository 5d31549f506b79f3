"""Signs and check digits: fiscal sign (ФПД), message sign, receipt QR, РНМ and ИНН check digits.

The real fiscal drive computes its signs in a crypto coprocessor with keys that are not public, so
the fake drive uses the project's deterministic stand-ins (fn-protocol.md §12.1, §14.1):

* **Drive secret** — ``HMAC-SHA256(key=seed, msg=fn_serial)``: one secret per drive, derived from
  its serial and a per-installation seed, shared by the fake drive and the ``verify`` tool.
* **Fiscal sign (ФПД)** — the first 4 bytes, big endian, of
  ``HMAC-SHA256(secret, fn_serial || fd_number_le32 || document_tlv)``, where ``document_tlv`` is
  the document's top-level TLVs in archive order without the 1077 TLV. Tag 1077 carries it as
  ``21 04`` + the 4 bytes big endian; drive answers carry the same integer as Uint32 LE.
* **Message sign (ФПС)** — the first 6 bytes of ``HMAC-SHA256(secret, container)``.

These values are NOT verifiable by the tax service (ФНС); only this module can recompute them.

Public algorithms implemented exactly:

* the receipt QR string (fn-protocol.md §12.2, ФФД §14–15);
* the registration number check digits (РНМ, fn-protocol.md §12.3, ФФД §16): CRC-16/CCITT-FALSE;
* the taxpayer number check digits (ИНН) of the ФНС for 10- and 12-digit numbers.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import struct
from datetime import datetime

from kkt_emulator.errors import ValidationError
from kkt_emulator.fn.crc import crc16_ccitt

__all__ = [
    "DEFAULT_SIGNING_SEED",
    "TAG_FISCAL_SIGN",
    "drive_secret",
    "fiscal_sign",
    "fpd_from_1077",
    "inn_is_valid",
    "make_inn",
    "make_rnm",
    "message_sign",
    "parse_qr",
    "receipt_qr",
    "rnm_check_digits",
    "strip_tlv",
    "tag1077_value",
    "validate_rnm",
    "verify_document",
]

TAG_FISCAL_SIGN = 1077

DEFAULT_SIGNING_SEED = "kkt-emulator"
"""The per-installation seed of :func:`drive_secret` when a profile names none (§12.1)."""
"""Tag 1077 «фискальный признак документа» (ФПД)."""

# fn-protocol.md §12.1 / §14.1, Project decision: the meaning of the first two bytes of 1077 is unknown;
# both captures carry 21 04, so the emulator writes them as a constant prefix.
_FPD_PREFIX = b"\x21\x04"
_FN_SERIAL_LEN = 16
_UINT32_MAX = 0xFFFF_FFFF
_TLV_HEADER = struct.Struct("<HH")

# ФНС check-digit weights for ИНН: n10 of a 10-digit number, n11 and n12 of a 12-digit one.
_INN10_WEIGHTS = (2, 4, 10, 3, 5, 9, 4, 6, 8)
_INN11_WEIGHTS = (7, 2, 4, 10, 3, 5, 9, 4, 6, 8)
_INN12_WEIGHTS = (3, 7, 2, 4, 10, 3, 5, 9, 4, 6, 8)

# fn-protocol.md §12.2: the six QR fields, in the order of the official example.
_QR_FIELDS = ("t", "s", "fn", "i", "fp", "n")
_QR_TIME = re.compile(r"(\d{8})T(\d{4})(\d{2})?", re.ASCII)
_QR_SUM = re.compile(r"(\d+)(?:\.(\d{1,2}))?", re.ASCII)
_QR_NUMBER = re.compile(r"\d{1,10}", re.ASCII)
_QR_FN = re.compile(r"\d{1,16}", re.ASCII)
# Tag 1054 «признак расчета»: 1 приход, 2 возврат прихода, 3 расход, 4 возврат расхода.
_OPERATIONS = range(1, 5)


# -- fiscal sign (ФПД) and message sign (ФПС) -----------------------------------------------------


def drive_secret(fn_serial: str, seed: str) -> bytes:
    """Derive a drive's signing secret: ``HMAC-SHA256(key=seed (UTF-8), msg=fn_serial (ASCII))``.

    Raises:
        ValidationError: ``fn_serial`` is not ASCII.
    """
    return hmac.new(seed.encode("utf-8"), _ascii(fn_serial, "fn_serial"), hashlib.sha256).digest()


def fiscal_sign(secret: bytes, fn_serial: str, fd_number: int, document_tlv: bytes) -> int:
    """Compute the fiscal sign (ФПД) of a document, as the unsigned 32-bit integer.

    Args:
        secret: the drive secret from :func:`drive_secret`.
        fn_serial: the drive number, 16 ASCII characters.
        fd_number: the fiscal document number (Uint32).
        document_tlv: the document's top-level TLVs in archive order, without the 1077 TLV.

    Raises:
        ValidationError: ``fn_serial`` is not 16 ASCII characters or ``fd_number`` is not a Uint32.
    """
    serial = _fn_serial_bytes(fn_serial)
    message = serial + _uint32(fd_number, "fd_number").to_bytes(4, "little") + bytes(document_tlv)
    digest = hmac.digest(secret, message, "sha256")  # the one-shot C HMAC, same bytes
    return int.from_bytes(digest[:4], "big")


def tag1077_value(fpd: int) -> bytes:
    """Encode a fiscal sign as the 6-byte value of tag 1077: ``21 04`` + Uint32 big endian.

    Raises:
        ValidationError: ``fpd`` is not a Uint32.
    """
    return _FPD_PREFIX + _uint32(fpd, "fpd").to_bytes(4, "big")


def fpd_from_1077(value: bytes) -> int:
    """Read the printed fiscal sign from a 1077 value: bytes 2–5 as Uint32 big endian.

    The first two bytes are not checked: their meaning is unknown (fn-protocol.md §12.1).

    Raises:
        ValidationError: the value is not 6 bytes long.
    """
    if len(value) != 6:
        raise ValidationError(str(TAG_FISCAL_SIGN), f"expected 6 bytes, got {len(value)}")
    return int.from_bytes(value[2:6], "big")


def message_sign(secret: bytes, data: bytes) -> bytes:
    """The 6-byte message sign (ФПС) of an OFD container: ``HMAC-SHA256(secret, data)[:6]``."""
    return hmac.new(secret, bytes(data), hashlib.sha256).digest()[:6]


def strip_tlv(document_tlv: bytes, tag: int) -> tuple[bytes, bytes | None]:
    """Remove every top-level TLV with ``tag`` from a TLV sequence.

    Only the top-level headers (tag Uint16 LE, length Uint16 LE) are walked; STLV contents are
    copied untouched.

    Returns:
        The sequence without those TLVs, and the value of the first one (``None`` if absent).

    Raises:
        ValidationError: a header or a value runs past the end of the data.
    """
    data = bytes(document_tlv)
    kept = bytearray()
    found: bytes | None = None
    pos = 0
    while pos < len(data):
        if len(data) - pos < _TLV_HEADER.size:
            raise ValidationError("document_tlv", f"truncated TLV header at offset {pos}")
        item_tag, length = _TLV_HEADER.unpack_from(data, pos)
        end = pos + _TLV_HEADER.size + length
        if end > len(data):
            raise ValidationError(
                "document_tlv",
                f"TLV {item_tag} at offset {pos} needs {length} bytes, "
                f"{len(data) - pos - _TLV_HEADER.size} left",
            )
        if item_tag == tag:
            if found is None:
                found = data[pos + _TLV_HEADER.size : end]
        else:
            kept += data[pos:end]
        pos = end
    return bytes(kept), found


def verify_document(secret: bytes, fn_serial: str, fd_number: int, document_tlv: bytes) -> bool:
    """Check the 1077 TLV of a signed document against a recomputed fiscal sign.

    Returns:
        ``True`` if the document carries a 1077 TLV equal to ``21 04`` + the fiscal sign of the rest
        of the document; ``False`` if 1077 is missing or differs.

    Raises:
        ValidationError: the TLV structure is truncated, or ``fn_serial``/``fd_number`` are bad.
    """
    rest, value = strip_tlv(document_tlv, TAG_FISCAL_SIGN)
    if value is None:
        return False
    expected = tag1077_value(fiscal_sign(secret, fn_serial, fd_number, rest))
    return hmac.compare_digest(expected, value)


# -- registration number (РНМ) --------------------------------------------------------------------


def rnm_check_digits(sequence: str, inn: str, kkt_serial: str) -> str:
    """The 6-digit check number of a registration number (fn-protocol.md §12.3).

    CRC-16/CCITT-FALSE over the ASCII string sequence (zero-padded to 10) + ИНН (zero-padded to 12)
    + ККТ serial (zero-padded to 20), printed in decimal and zero-padded to 6 digits.

    Raises:
        ValidationError: a field is empty, has non-digits or is longer than its width.
    """
    text = (
        _digit_field(sequence, "sequence", 10)
        + _digit_field(inn, "inn", 12)
        + _digit_field(kkt_serial, "kkt_serial", 20)
    )
    return f"{crc16_ccitt(text.encode('ascii')):06d}"


def make_rnm(sequence: int | str, inn: str, kkt_serial: str) -> str:
    """Build a 16-digit registration number: 10-digit sequence number + 6-digit check number.

    Raises:
        ValidationError: a field is negative, has non-digits or is too long.
    """
    if isinstance(sequence, bool):
        raise ValidationError("sequence", "expected a number, got a boolean")
    if isinstance(sequence, int):
        if sequence < 0:
            raise ValidationError("sequence", "must not be negative")
        sequence = str(sequence)
    seq = _digit_field(sequence, "sequence", 10)
    return seq + rnm_check_digits(seq, inn, kkt_serial)


def validate_rnm(rnm: str, inn: str, kkt_serial: str) -> bool:
    """Whether ``rnm`` is a registration number with correct check digits for this ИНН and serial.

    Accepts the 16-digit form and the 20-character form padded with spaces on the right (as in
    03h/A3h and tag 1037). A malformed ``rnm`` is simply not valid.

    Raises:
        ValidationError: ``inn`` or ``kkt_serial`` is malformed.
    """
    if len(rnm) == 20:
        rnm = rnm.rstrip(" ")
    if len(rnm) != 16 or not _is_ascii_digits(rnm):
        # Still check the other inputs, so a bad ИНН is reported the same way either way.
        _digit_field(inn, "inn", 12)
        _digit_field(kkt_serial, "kkt_serial", 20)
        return False
    return rnm[10:] == rnm_check_digits(rnm[:10], inn, kkt_serial)


# -- taxpayer number (ИНН) ------------------------------------------------------------------------


def inn_is_valid(inn: str) -> bool:
    """Whether ``inn`` is a 10-digit (organisation) or 12-digit (person) ИНН with correct checks."""
    if not _is_ascii_digits(inn):
        return False
    if len(inn) == 10:
        return inn[9] == _inn_digit(inn[:9], _INN10_WEIGHTS)
    if len(inn) == 12:
        return inn[10] == _inn_digit(inn[:10], _INN11_WEIGHTS) and inn[11] == _inn_digit(
            inn[:11], _INN12_WEIGHTS
        )
    return False


def make_inn(prefix: str) -> str:
    """Complete leading digits into a valid ИНН.

    * 9 digits → a 10-digit organisation ИНН (adds n10);
    * 10 digits → a 12-digit personal ИНН (adds n11 and n12);
    * 11 digits (the 11th being n11) → a 12-digit personal ИНН (adds n12).

    Raises:
        ValidationError: the prefix is not 9, 10 or 11 digits, or its 11th digit is not the n11
            check digit of the first ten.
    """
    if not _is_ascii_digits(prefix) or len(prefix) not in (9, 10, 11):
        raise ValidationError("inn", "expected 9, 10 or 11 leading digits")
    if len(prefix) == 9:
        return prefix + _inn_digit(prefix, _INN10_WEIGHTS)
    if len(prefix) == 10:
        prefix += _inn_digit(prefix, _INN11_WEIGHTS)
    elif prefix[10] != _inn_digit(prefix[:10], _INN11_WEIGHTS):
        raise ValidationError("inn", "the 11th digit is not the check digit of the first ten")
    return prefix + _inn_digit(prefix, _INN12_WEIGHTS)


# -- receipt QR code ------------------------------------------------------------------------------


def receipt_qr(  # noqa: PLR0917 - positional signature shared with the drive and the till
    when: datetime,
    total_kopecks: int,
    fn_serial: str,
    fd_number: int,
    fpd: int,
    operation: int,
    seconds: bool = False,
    fd_digits: int = 0,
) -> str:
    """Build the receipt QR text (fn-protocol.md §12.2).

    ``t=YYYYMMDDTHHMM[SS]&s=<rubles.kopecks>&fn=<ФН>&i=<ФД>&fp=<ФПД>&n=<1054>``.

    Args:
        when: the receipt date and time as printed (the local time of the place of settlement);
            an aware datetime is formatted in its own zone, not converted.
        total_kopecks: the receipt total in kopecks.
        fn_serial: the drive number, up to 16 digits.
        fd_number: the fiscal document number.
        fpd: the fiscal sign.
        operation: tag 1054 «признак расчета», 1–4.
        seconds: add seconds to the time, as many real tills do.
        fd_digits: zero-pad the document number to this many digits (the vendor's cloud shows
            ``i=0000000571``, store-api.md D50); 0 writes it without leading zeros (FFD §15).

    Raises:
        ValidationError: a value is out of range.
    """
    if isinstance(total_kopecks, bool) or total_kopecks < 0:
        raise ValidationError("total_kopecks", "expected a non-negative number of kopecks")
    if not _QR_FN.fullmatch(fn_serial):
        raise ValidationError("fn_serial", "expected up to 16 digits")
    if isinstance(operation, bool) or operation not in _OPERATIONS:
        raise ValidationError("operation", "expected 1054 «признак расчета» 1–4")
    stamp = when.strftime("%Y%m%dT%H%M%S" if seconds else "%Y%m%dT%H%M")
    rubles, kopecks = divmod(total_kopecks, 100)
    return (
        f"t={stamp}&s={rubles}.{kopecks:02d}&fn={fn_serial}"
        f"&i={_uint32(fd_number, 'fd_number'):0{fd_digits}d}&fp={_uint32(fpd, 'fpd')}&n={operation}"
    )


def parse_qr(text: str) -> dict[str, object]:
    """Parse a receipt QR text into the arguments of :func:`receipt_qr`.

    Fields may come in any order, but each of ``t s fn i fp n`` exactly once and nothing else.

    Returns:
        ``when`` (naive local ``datetime``), ``total_kopecks``, ``fn_serial``, ``fd_number``,
        ``fpd``, ``operation`` (ints, ``fn_serial`` a string) and ``seconds`` (whether ``t`` had
        them), so ``receipt_qr(**parse_qr(text))`` rebuilds a canonical string.

    Raises:
        ValidationError: the text is not a receipt QR (missing, repeated, unknown or bad fields).
    """
    fields = _qr_fields(text)
    when, seconds = _qr_time(fields["t"])
    if not _QR_FN.fullmatch(fields["fn"]):
        raise ValidationError("qr.fn", "expected up to 16 digits")
    numbers: dict[str, int] = {}
    for key in ("i", "fp", "n"):
        if not _QR_NUMBER.fullmatch(fields[key]) or int(fields[key]) > _UINT32_MAX:
            raise ValidationError(f"qr.{key}", "expected an unsigned 32-bit number")
        numbers[key] = int(fields[key])
    if numbers["n"] not in _OPERATIONS:
        raise ValidationError("qr.n", "expected 1054 «признак расчета» 1–4")
    return {
        "when": when,
        "total_kopecks": _qr_sum(fields["s"]),
        "fn_serial": fields["fn"],
        "fd_number": numbers["i"],
        "fpd": numbers["fp"],
        "operation": numbers["n"],
        "seconds": seconds,
    }


def _qr_fields(text: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for part in text.strip().split("&"):
        key, sep, value = part.partition("=")
        if not sep:
            raise ValidationError("qr", f"expected key=value, got {part!r}")
        if key not in _QR_FIELDS:
            raise ValidationError("qr", f"unknown field {key!r}")
        if key in fields:
            raise ValidationError(f"qr.{key}", "repeated")
        fields[key] = value
    missing = [key for key in _QR_FIELDS if key not in fields]
    if missing:
        raise ValidationError("qr", f"missing {', '.join(missing)}")
    return fields


def _qr_time(value: str) -> tuple[datetime, bool]:
    match = _QR_TIME.fullmatch(value)
    if match is None:
        raise ValidationError("qr.t", "expected YYYYMMDDTHHMM or YYYYMMDDTHHMMSS")
    date, hhmm, ss = match.groups()
    try:
        when = datetime.strptime(date + hhmm + (ss or "00"), "%Y%m%d%H%M%S")  # noqa: DTZ007 - the QR carries the local time of the place of settlement, with no zone
    except ValueError as exc:
        raise ValidationError("qr.t", f"not a date and time: {value!r}") from exc
    return when, ss is not None


def _qr_sum(value: str) -> int:
    match = _QR_SUM.fullmatch(value)
    if match is None:
        raise ValidationError("qr.s", "expected rubles with up to two decimals")
    rubles, fraction = match.groups()
    return int(rubles) * 100 + int((fraction or "0").ljust(2, "0"))


# -- helpers --------------------------------------------------------------------------------------


def _is_ascii_digits(text: str) -> bool:
    # str.isdigit() accepts other scripts' digits and superscripts; the wire wants ASCII 0-9.
    return text.isascii() and text.isdigit()


def _ascii(text: str, field: str) -> bytes:
    try:
        return text.encode("ascii")
    except UnicodeEncodeError as exc:
        raise ValidationError(field, "expected ASCII characters") from exc


def _fn_serial_bytes(fn_serial: str) -> bytes:
    serial = _ascii(fn_serial, "fn_serial")
    if len(serial) != _FN_SERIAL_LEN:
        raise ValidationError("fn_serial", f"expected 16 ASCII characters, got {len(serial)}")
    return serial


def _uint32(value: int, field: str) -> int:
    if isinstance(value, bool) or not 0 <= value <= _UINT32_MAX:
        raise ValidationError(field, "expected an unsigned 32-bit number")
    return value


def _digit_field(value: str, field: str, width: int) -> str:
    if not value or not _is_ascii_digits(value):
        raise ValidationError(field, "expected digits")
    if len(value) > width:
        raise ValidationError(field, f"expected at most {width} digits, got {len(value)}")
    return value.zfill(width)


def _inn_digit(digits: str, weights: tuple[int, ...]) -> str:
    total = sum(int(d) * w for d, w in zip(digits, weights, strict=True))
    return str(total % 11 % 10)
