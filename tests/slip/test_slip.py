"""The receipt as printed: requisites from a known document, the text, SVG and PNG drawings."""

from __future__ import annotations

import io
import runpy
import subprocess
import sys
import xml.etree.ElementTree as ET
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import segno
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from kkt_emulator.errors import ValidationError
from kkt_emulator.slip import (
    Receipt,
    Registration,
    Seller,
    receipt_from_store,
    render_png,
    render_svg,
    render_text,
    slip_lines,
)
from kkt_emulator.slip.model import WIDTH, LineKind, money
from kkt_emulator.slip.render import layout, qr_matrix
from kkt_emulator.slip.store import time_from_qr

SVG = "{http://www.w3.org/2000/svg}"
QR = "t=20261203T120500&s=2801.00&fn=9999078902000001&i=0000000057&fp=3123456789&n=1"
REGISTRATION = Registration(
    seller=Seller(
        'ООО "Ромашка"',
        "7702203276",
        "111141, г. Москва, ул. Кусковская, д. 20А",
        "https://romashka.example",
    ),
    ofd_name='ООО "Такском"',
    ofd_inn="7704358518",
    fns_site="www.nalog.gov.ru",
    sender_email="noreply@romashka.example",
    cashier="Интернет-магазин",
)


def document(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "id": "order-57",
        "docType": "SALE",
        "email": "buyer@example.com",
        "taxMode": "COMMON",
        "inventPositions": [
            {
                "name": "Кофе в зёрнах «Арабика», 1 кг",
                "price": 1250.5,
                "quantity": 2,
                "vatTag": 1102,
            },
            {"name": "Доставка", "price": 300, "quantity": 1, "vatTag": 1105},
        ],
        "moneyPositions": [
            {"paymentType": "CARD", "sum": 2000},
            {"paymentType": "CASH", "sum": 801},
        ],
    }
    doc.update(changes)
    return doc


def fiscal_info(**changes: Any) -> dict[str, Any]:
    info: dict[str, Any] = {
        "shiftNumber": 3,
        "checkNumber": 12,
        "kktNumber": "000100000001",
        "fnNumber": "9999078902000001",
        "fnDocNumber": 57,
        "fnDocMark": 3123456789,
        "date": "2026-12-03T09:05:00+00:00",
        "sum": 2801.0,
        "checkType": "SALE",
        "qr": QR,
        "ecrRegistrationNumber": "0000000001012345",
    }
    info.update(changes)
    return info


def known() -> Receipt:
    return receipt_from_store(document(), fiscal_info(), REGISTRATION)


EXPECTED_TEXT = """\
              ООО "Ромашка"
111141, г. Москва, ул. Кусковская, д. 20А
 Место расчетов: https://romashka.example
              ИНН 7702203276
------------------------------------------
               КАССОВЫЙ ЧЕК
                  ПРИХОД
Смена № 3                         Чек № 12
03.12.2026 12:05
Кассир                    Интернет-магазин
------------------------------------------
1. Кофе в зёрнах «Арабика», 1 кг
   2 × 1250.50                    =2501.00
   НДС 20%                         =416.83
2. Доставка
   1 × 300.00                      =300.00
   БЕЗ НДС
------------------------------------------
ИТОГ                              =2801.00
НАЛИЧНЫМИ                          =801.00
БЕЗНАЛИЧНЫМИ                      =2000.00
СУММА НДС 20%                      =416.83
СУММА БЕЗ НДС                      =300.00
------------------------------------------
СНО                                    ОСН
ЭЛ. АДР. ПОКУПАТЕЛЯ      buyer@example.com
ЭЛ. АДР. ОТПРАВИТЕЛЯ
                  noreply@romashka.example
САЙТ ФНС                  www.nalog.gov.ru
ОФД                          ООО "Такском"
ИНН ОФД                         7704358518
РН ККТ                    0000000001012345
ЗН ККТ                        000100000001
ФН                        9999078902000001
ФД                                      57
ФП                              3123456789
QR: t=20261203T120500&s=2801.00&fn=9999078902000001&i=0000000057&fp=3123456789&n=1
"""


def test_the_known_receipt_prints_as_a_till_prints_it() -> None:
    assert render_text(known()) == EXPECTED_TEXT


def test_every_requisite_of_the_known_receipt() -> None:
    receipt = known()
    assert receipt.seller == REGISTRATION.seller
    assert (receipt.title, receipt.operation, receipt.operation_name) == (
        "КАССОВЫЙ ЧЕК",
        1,
        "ПРИХОД",
    )
    assert (receipt.shift, receipt.number) == (3, 12)
    assert receipt.when == datetime(2026, 12, 3, 12, 5)  # noqa: DTZ001 - wall time as printed  # the QR's local time, not UTC
    assert receipt.cashier == "Интернет-магазин"
    first, second = receipt.positions
    assert (first.quantity, first.price, first.total, first.vat, first.vat_sum) == (
        Decimal(2),
        125050,
        250100,
        "НДС 20%",
        41683,
    )
    assert (second.total, second.vat, second.vat_sum) == (30000, "БЕЗ НДС", None)
    assert receipt.total == 280100
    assert [(p.label, p.amount) for p in receipt.payments] == [
        ("НАЛИЧНЫМИ", 80100),
        ("БЕЗНАЛИЧНЫМИ", 200000),
    ]
    assert [(v.label, v.amount) for v in receipt.vat_sums] == [
        ("СУММА НДС 20%", 41683),
        ("СУММА БЕЗ НДС", 30000),
    ]
    assert receipt.tax_system == "ОСН"
    assert receipt.customer_contact == "buyer@example.com"
    assert receipt.sender_email == "noreply@romashka.example"
    assert (receipt.ofd_name, receipt.ofd_inn, receipt.fns_site) == (
        'ООО "Такском"',
        "7704358518",
        "www.nalog.gov.ru",
    )
    assert (receipt.rnm, receipt.kkt_serial, receipt.fn_serial) == (
        "0000000001012345",
        "000100000001",
        "9999078902000001",
    )
    assert (receipt.fd, receipt.fp, receipt.qr) == (57, 3123456789, QR)


def test_the_json_round_trip_keeps_every_requisite() -> None:
    receipt = known()
    assert Receipt.from_json(receipt.to_json()) == receipt


@pytest.mark.parametrize(
    ("check_type", "title", "operation"),
    [
        ("RETURN", "КАССОВЫЙ ЧЕК", "ВОЗВРАТ ПРИХОДА"),
        ("PURCHASE", "КАССОВЫЙ ЧЕК", "РАСХОД"),
        ("RETURN_PURCHASE", "КАССОВЫЙ ЧЕК", "ВОЗВРАТ РАСХОДА"),
        ("SALE_CORRECTION", "КАССОВЫЙ ЧЕК КОРРЕКЦИИ", "ПРИХОД"),
    ],
)
def test_the_sign_of_calculation(check_type: str, title: str, operation: str) -> None:
    receipt = receipt_from_store(document(), fiscal_info(checkType=check_type), REGISTRATION)
    text = render_text(receipt)
    assert (receipt.title, receipt.operation_name) == (title, operation)
    assert f"\n{title.center(WIDTH).rstrip()}\n{operation.center(WIDTH).rstrip()}\n" in text


def test_a_discount_phone_contact_and_default_tax_mode() -> None:
    doc = document(
        email=None,
        phone="+79990001122",
        taxMode=None,
        inventPositions=[
            {"name": "Чай", "price": 100, "quantity": 3, "discSum": 10, "vatTag": 1103}
        ],
        moneyPositions=[{"paymentType": "PREPAID", "sum": 290}],
    )
    receipt = receipt_from_store(doc, fiscal_info(sum=290), REGISTRATION, "SIMPLIFIED")
    (item,) = receipt.positions
    assert (item.price, item.total, item.vat, item.vat_sum) == (9667, 29000, "НДС 10%", 2636)
    assert [(p.label, p.amount) for p in receipt.payments] == [
        ("НАЛИЧНЫМИ", 0),
        ("БЕЗНАЛИЧНЫМИ", 0),
        ("ПРЕДВАРИТЕЛЬНАЯ ОПЛАТА (АВАНС)", 29000),
    ]
    assert receipt.tax_system == "УСН доход"
    text = render_text(receipt)
    assert "ТЕЛ. ПОКУПАТЕЛЯ" in text
    assert "+79990001122" in text


def test_no_contact_prints_no_sender() -> None:
    receipt = receipt_from_store(document(email=None), fiscal_info(), REGISTRATION)
    assert receipt.customer_contact is None
    assert receipt.sender_email is None
    assert "ОТПРАВИТЕЛЯ" not in render_text(receipt)


@pytest.mark.parametrize(
    ("doc", "info", "field"),
    [
        (document(), fiscal_info(qr="x", date="yesterday"), "fiscalInfo.date"),
        (
            document(),
            {k: v for k, v in fiscal_info().items() if k != "fnDocMark"},
            "fiscalInfo.fnDocMark",
        ),
        (document(), fiscal_info(checkType="GIFT"), "fiscalInfo.checkType"),
        (
            document(inventPositions=[{"name": "x", "price": "NaN", "vatTag": 1105}]),
            fiscal_info(),
            "inventPositions[0].price",
        ),
        (
            document(inventPositions=[{"name": "x", "price": 1, "vatTag": 99}]),
            fiscal_info(),
            "inventPositions[0].vatTag",
        ),
        (
            document(moneyPositions=[{"paymentType": "GOLD", "sum": 1}]),
            fiscal_info(),
            "moneyPositions[0].paymentType",
        ),
    ],
)
def test_bad_data_names_the_field(doc: dict[str, Any], info: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        receipt_from_store(doc, info, REGISTRATION)
    assert caught.value.field == field


def test_time_from_qr() -> None:
    assert time_from_qr("t=20190904T1414&s=1.00") == datetime(2019, 9, 4, 14, 14)  # noqa: DTZ001 - wall time
    assert time_from_qr("s=1.00&t=20190904T141401") == datetime(2019, 9, 4, 14, 14, 1)  # noqa: DTZ001 - wall time
    assert time_from_qr("s=1.00") is None
    assert time_from_qr("t=2019090&s=1.00") is None


@given(st.text(min_size=1, max_size=300), st.text(max_size=60))
@settings(max_examples=60, deadline=None)
def test_no_line_is_wider_than_the_roll(name: str, value: str) -> None:
    receipt = receipt_from_store(
        document(inventPositions=[{"name": name, "price": 1, "quantity": 1, "vatTag": 1105}]),
        fiscal_info(),
        Registration(Seller(name, "7702203276", value, value), cashier=value),
    )
    for line in slip_lines(receipt):
        if line.kind is not LineKind.QR:
            assert (
                len(line.left) + len(line.right) + (1 if line.left and line.right else 0) <= WIDTH
            )


def test_money() -> None:
    assert [money(v) for v in (0, 5, 100, 123456, -250)] == [
        "0.00",
        "0.05",
        "1.00",
        "1234.56",
        "-2.50",
    ]


def test_the_svg_is_well_formed_and_carries_the_text_and_the_qr_code() -> None:
    receipt = known()
    root = ET.fromstring(render_svg(receipt).encode())  # noqa: S314 - the project's own SVG
    assert root.tag == f"{SVG}svg"
    lay = layout(receipt)
    assert (root.get("width"), root.get("height")) == (str(lay.width), str(lay.height))
    texts = [t.text or "" for t in root.iter(f"{SVG}text")]
    for requisite in (
        "КАССОВЫЙ ЧЕК",
        "ПРИХОД",
        "ИТОГ",
        "=2801.00",
        "ФП",
        "3123456789",
        "ИНН 7702203276",
    ):
        assert requisite in texts
    (group,) = [g for g in root.iter(f"{SVG}g") if g.get("id") == "qr"]
    assert group.get("data-qr") == QR
    (path,) = group.iter(f"{SVG}path")
    dark = sum(sum(row) for row in qr_matrix(QR))
    assert (path.get("d") or "").count("M") == dark > 100


def test_the_qr_matrix_is_segnos_code_of_the_string() -> None:
    code = segno.make_qr(QR, error="m", boost_error=False)
    assert qr_matrix(QR) == tuple(tuple(int(bool(c)) for c in row) for row in code.matrix)
    assert code.designator.endswith("-M")


def test_the_png_decodes_with_the_layouts_size_and_has_the_qr_code() -> None:
    receipt = known()
    image = Image.open(io.BytesIO(render_png(receipt)))  # a memory buffer: nothing to close
    lay = layout(receipt)
    assert image.format == "PNG"
    assert image.size == (lay.width, lay.height)
    qr = lay.qr
    assert qr is not None
    rgb = image.convert("RGB")
    for row, cells in enumerate(qr.matrix):
        for col, dark in enumerate(cells):
            pixel = rgb.getpixel((qr.x + col * qr.module + 1, qr.y + row * qr.module + 1))
            assert (pixel == (0, 0, 0)) == bool(dark), (row, col)
    # the text is drawn: the header band has ink in it
    band = rgb.crop((0, 0, lay.width, lay.texts[0].y + 4))
    histogram = band.convert("L").histogram()
    darkest = next(level for level, count in enumerate(histogram) if count)
    assert darkest < 0x40


def test_the_readme_image_is_the_example_scripts_drawing(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    script = runpy.run_path(str(root / "scripts" / "receipt-example"))
    receipt = script["example"]()
    out = tmp_path / "receipt.png"
    subprocess.run(  # noqa: S603 - the project's own script
        [sys.executable, str(root / "scripts" / "receipt-example"), str(out)],
        check=True,
        capture_output=True,
    )
    lay = layout(receipt)
    with (
        Image.open(out) as drawn,
        Image.open(root / "docs" / "images" / "receipt.png") as committed,
    ):
        assert drawn.size == committed.size == (lay.width, lay.height)
