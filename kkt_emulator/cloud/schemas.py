"""Pydantic models: request bodies of the till and cabinet APIs, and OpenAPI-only store models.

The store API validates its ``Document`` by hand (:mod:`kkt_emulator.cloud.validation`, because of
the Jackson-style coercions of D9); the store models here only describe it in ``/openapi.json``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from kkt_emulator.cloud.lifecycle import FailureType, Status
from kkt_emulator.cloud.settings import DuplicatePolicy, FnState, PickupWindow

__all__ = [
    "AccountCreate",
    "BindRequest",
    "ClockAdvance",
    "DocumentSchema",
    "DocumentStatusSchema",
    "FiscalInfoIn",
    "FnStatusSchema",
    "HeartbeatRequest",
    "MessageSchema",
    "OfdAck",
    "OfdAcksRequest",
    "ResultItem",
    "ResultsRequest",
    "RetailPointAssociationSchema",
    "RetailPointCreate",
    "RetailPointUpdate",
    "TaxMode",
]

# The tax systems of kkt_emulator.taxes.TAX_SYSTEMS, spelled out as a Literal so that
# /openapi.json lists them as a plain string enum; tests/cloud/test_schemas.py keeps the two equal.
TaxMode = Literal[
    "COMMON", "SIMPLIFIED", "SIMPLIFIED_WITH_EXPENSE", "ENVD", "COMMON_AGRICULTURAL", "PATENT"
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- store API (documentation only) ------------------------------------------------------------------


class MessageSchema(BaseModel):
    """Every 4xx body (D7)."""

    message: str


class RetailPointAssociationSchema(BaseModel):
    """``RetailPointAssociation`` (§7.6, D11)."""

    userName: str  # noqa: N815 - vendor field name
    password: str
    name: str
    address: str


class FnStatusSchema(BaseModel):
    """``FNStatus`` (§7.5, D13)."""

    status: FnState
    dateTime: str  # noqa: N815 - vendor field name


class FailureInfoSchema(BaseModel):
    """``FailureInfo`` (§7.4)."""

    type: FailureType
    message: str


class FiscalInfoIn(BaseModel):
    """``FiscalInfo`` (§7.3, D50), as a till reports it and the store API returns it."""

    model_config = ConfigDict(extra="allow")

    shiftNumber: int  # noqa: N815 - vendor field name
    checkNumber: int  # noqa: N815 - vendor field name
    kktNumber: str  # noqa: N815 - vendor field name
    fnNumber: str  # noqa: N815 - vendor field name
    fnDocNumber: int  # noqa: N815 - vendor field name
    fnDocMark: int  # noqa: N815 - vendor field name
    date: datetime
    sum: float
    checkType: Literal[  # noqa: N815 - vendor field name
        "SALE",
        "RETURN",
        "PURCHASE",
        "RETURN_PURCHASE",
        "SALE_CORRECTION",
        "RETURN_CORRECTION",
        "PURCHASE_CORRECTION",
        "RETURN_PURCHASE_CORRECTION",
    ]
    qr: str
    ecrRegistrationNumber: str | None = None  # noqa: N815 - vendor field name


class DocumentStatusSchema(BaseModel):
    """``DocumentStatus`` (§7.1): all six keys are always present (D10)."""

    status: Status
    fnState: FnState | None  # noqa: N815 - vendor field name
    fiscalInfo: FiscalInfoIn | None  # noqa: N815 - vendor field name
    failureInfo: FailureInfoSchema | None  # noqa: N815 - vendor field name
    message: str | None
    timeStatusChanged: str | None  # noqa: N815 - vendor field name


class MoneyPositionSchema(BaseModel):
    """``MoneyPosition`` (§6.2)."""

    paymentType: Literal["CARD", "CASH", "PREPAID", "POSTPAY", "OTHER"]  # noqa: N815 - vendor field name
    sum: float


class InventPositionSchema(BaseModel):
    """``InventPosition`` (§6.3); ``agentInfo``, ``supplierInfo`` and ``nomenclatureCode`` are v2."""

    name: str
    price: float
    quantity: float
    vatTag: int = Field(ge=1102, le=1107)  # noqa: N815 - vendor field name
    inventCode: str | None = None  # noqa: N815 - vendor field name
    barcode: str | None = None
    discSum: float | None = None  # noqa: N815 - vendor field name
    description: str | None = None
    originCountryCode: str | None = None  # noqa: N815 - vendor field name
    customsDeclarationNumber: str | None = None  # noqa: N815 - vendor field name
    vatSum: float | None = None  # noqa: N815 - vendor field name
    paymentObject: str | None = "commodity"  # noqa: N815 - vendor field name
    paymentMethod: str | None = "full_payment"  # noqa: N815 - vendor field name
    nomenclatureCode: str | None = None  # noqa: N815 - vendor field name
    productMark: str | None = Field(default=None, max_length=255)  # noqa: N815 - vendor field name
    agentInfo: dict[str, Any] | None = None  # noqa: N815 - vendor field name
    supplierInfo: dict[str, Any] | None = None  # noqa: N815 - vendor field name


class DocumentSchema(BaseModel):
    """``Document`` (§6.1); validated as D23 says, with the coercions of D9."""

    id: str
    docNum: str  # noqa: N815 - vendor field name
    docType: Literal["SALE", "RETURN", "BUY", "BUY_RETURN"]  # noqa: N815 - vendor field name
    checkoutDateTime: str  # noqa: N815 - vendor field name
    email: str | None = None
    printReceipt: bool = False  # noqa: N815 - vendor field name
    textToPrint: str | None = Field(default=None, max_length=3000)  # noqa: N815 - vendor field name
    cashierName: str | None = Field(default=None, max_length=64)  # noqa: N815 - vendor field name
    cashierInn: str | None = None  # noqa: N815 - vendor field name
    cashierPosition: str | None = Field(default=None, max_length=64)  # noqa: N815 - vendor field name
    responseURL: str | None = None  # noqa: N815 - vendor field name
    taxMode: TaxMode | None = None  # noqa: N815 - vendor field name
    clientName: str | None = None  # noqa: N815 - vendor field name
    clientInn: str | None = None  # noqa: N815 - vendor field name
    inventPositions: list[InventPositionSchema]  # noqa: N815 - vendor field name
    moneyPositions: list[MoneyPositionSchema]  # noqa: N815 - vendor field name
    agentInfo: dict[str, Any] | None = None  # noqa: N815 - vendor field name


# -- till API ----------------------------------------------------------------------------------------


class HeartbeatRequest(BaseModel):
    """``POST /heartbeat``: the till's state. Extra keys are kept for the cabinet."""

    model_config = ConfigDict(extra="allow")

    fnState: Literal["READY", "FAILED"]  # noqa: N815 - wire field name
    fnSerial: str | None = None  # noqa: N815 - wire field name
    fn: dict[str, Any] | None = None
    powerSaving: bool = False  # noqa: N815 - wire field name
    firmwareProfile: str | None = None  # noqa: N815 - wire field name
    appVersion: str | None = None  # noqa: N815 - wire field name


class BindRequest(_Strict):
    """``POST /bind``: the till introduces itself, optionally with its first heartbeat (D134)."""

    tillSerial: str = Field(min_length=1)  # noqa: N815 - wire field name
    fnSerial: str = ""  # noqa: N815 - wire field name
    model: str = ""
    firmwareProfile: str = ""  # noqa: N815 - wire field name
    retailPointId: str | None = None  # noqa: N815 - wire field name
    heartbeat: HeartbeatRequest | None = None


class FailureIn(_Strict):
    """A failure reported by a till."""

    type: FailureType
    message: str = Field(min_length=1)


class ResultItem(_Strict):
    """One outcome: ``fiscalized`` with ``fiscalInfo`` or ``failed`` with ``failureInfo``."""

    docId: str = Field(min_length=1)  # noqa: N815 - wire field name
    leaseId: str | None = None  # noqa: N815 - wire field name
    outcome: Literal["fiscalized", "failed"]
    fiscalInfo: FiscalInfoIn | None = None  # noqa: N815 - wire field name
    failureInfo: FailureIn | None = None  # noqa: N815 - wire field name
    resultCode: int | None = None  # noqa: N815 - wire field name
    detail: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _outcome_has_its_data(self) -> ResultItem:
        if self.outcome == "fiscalized" and self.fiscalInfo is None:
            raise ValueError("fiscalInfo is required when outcome is fiscalized")
        if self.outcome == "failed" and self.failureInfo is None:
            raise ValueError("failureInfo is required when outcome is failed")
        return self


class ResultsRequest(_Strict):
    """``POST /results``: a batch of outcomes."""

    results: list[ResultItem] = Field(max_length=1000)


class OfdAck(_Strict):
    """The OFD's receipt of one fiscal document."""

    fnDocNumber: int  # noqa: N815 - wire field name
    fnNumber: str | None = None  # noqa: N815 - wire field name
    state: Literal["sent", "acknowledged"] = "acknowledged"
    at: datetime | None = None


class OfdAcksRequest(_Strict):
    """``POST /ofd-acks``."""

    acks: list[OfdAck] = Field(max_length=10000)


# -- cabinet API -------------------------------------------------------------------------------------


class AccountCreate(_Strict):
    """A new ЛК account, optionally with an e-mail/password login (D5)."""

    id: str | None = None
    name: str = Field(min_length=1)
    login: str | None = None
    password: str | None = None


class RetailPointCreate(_Strict):
    """A new retail point (§11)."""

    id: str | None = None
    accountId: str | None = None  # noqa: N815 - wire field name
    name: str = Field(min_length=1)
    address: str = ""
    inn: str = Field(default="", pattern=r"^(\d{10}|\d{12})?$")
    internetDocsEnabled: bool = True  # noqa: N815 - wire field name
    stopOnErrors: bool = False  # noqa: N815 - wire field name
    pickupWindow: PickupWindow = PickupWindow.THREE_DAYS  # noqa: N815 - wire field name
    defaultTaxMode: TaxMode = "COMMON"  # noqa: N815 - wire field name
    duplicatePolicy: DuplicatePolicy = DuplicatePolicy.REPLAY  # noqa: N815 - wire field name


class RetailPointUpdate(_Strict):
    """Changes to a retail point; absent fields stay as they are."""

    accountId: str | None = None  # noqa: N815 - wire field name
    name: str | None = Field(default=None, min_length=1)
    address: str | None = None
    inn: str | None = Field(default=None, pattern=r"^(\d{10}|\d{12})?$")
    internetDocsEnabled: bool | None = None  # noqa: N815 - wire field name
    stopOnErrors: bool | None = None  # noqa: N815 - wire field name
    pickupWindow: PickupWindow | None = None  # noqa: N815 - wire field name
    defaultTaxMode: TaxMode | None = None  # noqa: N815 - wire field name
    duplicatePolicy: DuplicatePolicy | None = None  # noqa: N815 - wire field name


class ClockAdvance(_Strict):
    """``POST /clock/advance``: a duration such as ``15m``, ``235s``, ``1h30m`` or ``30d``."""

    duration: str = Field(min_length=1)
