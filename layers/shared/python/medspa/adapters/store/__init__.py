"""The DynamoDB data layer: clients, appointments and the money ledger behind small repositories.

Table names and region are configuration handed to ``Store``, never read from ``os.environ`` by the
models: handlers build ``TableNames.from_env(os.environ)``; tests build it from the tables they
created out of ``template.yaml``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from medspa.domain.keys import client_key

from medspa.domain.booking import (
    OPEN_STATUSES,
    Appointment,
    AppointmentBooking,
    AppointmentStatus,
    BookingFacts,
    CardCheck,
    FeeState,
    LateArrival,
    LifecycleOutcome,
    MessageLog,
    MessageResult,
    Violation,
)

from .appointments import AppointmentRepository, UpsertResult
from medspa.domain.client import Channel, Client, ClientProfile, Strike
from medspa.domain.ledger import (EntryKind, EntryStatus, LedgerEntry, Purpose, account_entry_id, ledger_entry_id,
                                  stripe_idempotency_key)

from .clients import ClientRepository
from .errors import (
    AppointmentNotFound,
    ClientErased,
    ClientNotFound,
    ConcurrentUpdate,
    ConflictingEvent,
    InsufficientBalance,
    LedgerConflict,
    LedgerEntryNotFound,
    NotFound,
    StaleVersion,
    StoreError,
    StoreUnavailable,
)
from medspa.ports.consent import Consent, ConsentBook
from .consent import ConsentRepository, InMemoryConsent
from .ledger import LedgerRepository
from .courses import CourseRepository, InMemoryCourses
from .memberships import InMemoryMemberships, MembershipRepository
from .models import AppointmentRecord, ClientRecord, ConsentItem, CourseItem, LedgerRecord, MembershipItem, bind


class TableNames(BaseModel):
    model_config = ConfigDict(defer_build=True, frozen=True)

    clients: str = Field(min_length=3)
    appointments: str = Field(min_length=3)
    ledger: str = Field(min_length=3)
    consent: str = Field(min_length=3, description="Consent by contact address, unsubscribe links, keyword replies.")
    memberships: str = Field(min_length=3)
    courses: str = Field(min_length=3)

    ENV: ClassVar[Mapping[str, str]] = {"clients": "CLIENTS_TABLE", "appointments": "APPOINTMENTS_TABLE",
           "ledger": "LEDGER_TABLE", "consent": "CONSENT_TABLE",
           "memberships": "MEMBERSHIPS_TABLE", "courses": "COURSES_TABLE"}

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> "TableNames":
        missing = [var for var in cls.ENV.values() if not environ.get(var)]
        if missing:
            raise KeyError(f"table names missing from the environment: {', '.join(missing)}")
        return cls(**{field: environ[var] for field, var in cls.ENV.items()})


class Store:
    """The repositories bound to one set of tables; cheap to build, no network until first use."""

    def __init__(self, tables: TableNames, region: str, endpoint_url: str | None = None) -> None:
        self.tables = tables
        self.clients = ClientRepository(bind(ClientRecord, tables.clients, region, endpoint_url))
        self.appointments = AppointmentRepository(bind(AppointmentRecord, tables.appointments, region, endpoint_url))
        self.ledger = LedgerRepository(bind(LedgerRecord, tables.ledger, region, endpoint_url))
        self.consent = ConsentRepository(bind(ConsentItem, tables.consent, region, endpoint_url))
        self.memberships = MembershipRepository(bind(MembershipItem, tables.memberships, region, endpoint_url))
        self.courses = CourseRepository(bind(CourseItem, tables.courses, region, endpoint_url))

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> "Store":
        region = environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION")
        if not region:
            raise KeyError("AWS_REGION is not set")
        return cls(TableNames.from_env(environ), region, environ.get("AWS_ENDPOINT_URL_DYNAMODB"))


__all__ = [
    "Appointment", "AppointmentBooking", "BookingFacts", "CardCheck", "FeeState", "LateArrival", "LifecycleOutcome",
    "MessageLog",
    "MessageResult", "OPEN_STATUSES", "Violation", "AppointmentNotFound", "AppointmentRepository", "AppointmentStatus",
    "Channel", "Client", "ClientErased", "ClientNotFound", "Consent", "ConsentBook", "ConsentRepository", "InMemoryConsent", "ClientProfile", "ClientRepository", "ConcurrentUpdate", "ConflictingEvent", "EntryKind",
    "EntryStatus", "InsufficientBalance", "LedgerConflict", "LedgerEntry", "LedgerEntryNotFound",
    "LedgerRepository", "CourseRepository", "InMemoryCourses", "InMemoryMemberships", "MembershipRepository", "NotFound", "Purpose", "StaleVersion", "Store", "StoreUnavailable",
    "StoreError", "Strike", "TableNames", "UpsertResult", "account_entry_id", "client_key", "ledger_entry_id",
    "stripe_idempotency_key",
]
