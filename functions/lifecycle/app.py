"""Step Functions task of the AppointmentLifecycle: re-read the appointment and say what comes next."""

import os
from datetime import UTC, datetime

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from medspa.adapters.store import Store
from medspa.policy.loader import load_packs
from medspa.services.lifecycle import LifecycleService, StepRequest

logger = Logger()
service = LifecycleService(Store.from_env(os.environ).appointments, load_packs())


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    request = StepRequest.model_validate(event)
    logger.append_keys(appointment_id=request.appointment_id, booking_version=request.booking_version)
    return service.next_step(request, now=datetime.now(UTC)).model_dump(mode="json")
