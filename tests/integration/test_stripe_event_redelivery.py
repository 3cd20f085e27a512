"""A Stripe event the budget turned away comes back after a jittered while of its own (``medspa.adapters.redelivery``),
so a burst of webhooks that failed together does not come back together, fail together, and reach the DLQ.
The fault test (`tests/e2e/test_fault_injection.py`) shows it end to end: its bursts of declined fees' webhooks
all end applied, none dead-lettered."""

from __future__ import annotations

import time

import boto3
import pytest
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from moto import mock_aws
from moto.core import DEFAULT_ACCOUNT_ID
from moto.sqs.models import sqs_backends

from medspa.adapters.redelivery import FIRST_WINDOW_SECONDS, LAST_WINDOW_SECONDS, Redelivery, backoff_seconds


@pytest.mark.parametrize("receives", [1, 2, 3, 4, 5, 9])
def test_each_retry_waits_within_a_window_that_doubles_with_every_receive_up_to_its_cap(receives):
    window = min(LAST_WINDOW_SECONDS, FIRST_WINDOW_SECONDS * 2 ** (receives - 1))
    waits = [backoff_seconds(f"message-{i}", receives) for i in range(400)]
    assert all(1 <= w <= window for w in waits)
    assert max(waits) > window * 0.9, "the whole window is used"
    assert waits == [backoff_seconds(f"message-{i}", receives) for i in range(400)], "the same in every run"


def test_a_burst_that_failed_in_one_second_comes_back_spread_over_the_first_window():
    burst = [backoff_seconds(f"evt-{i}", 1) for i in range(100)]
    per_second = max(burst.count(s) for s in set(burst))
    assert len(set(burst)) >= 25 and per_second <= 10  # 100 events at most 10 a second, under the 25 budget


def test_a_throttled_record_is_hidden_for_its_backoff_not_the_queues_visibility_timeout():
    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        url = sqs.create_queue(QueueName="stripe-events.fifo", Attributes={
            "FifoQueue": "true", "ContentBasedDeduplication": "true", "VisibilityTimeout": "180"})["QueueUrl"]
        sqs.send_message(QueueUrl=url, MessageBody='{"id": "evt_1"}', MessageGroupId="pi_1")
        message = sqs.receive_message(QueueUrl=url, MessageSystemAttributeNames=["All"])["Messages"][0]
        record = SQSRecord({"messageId": message["MessageId"], "receiptHandle": message["ReceiptHandle"],
                            "body": message["Body"], "attributes": message["Attributes"], "messageAttributes": {},
                            "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:q",
                            "awsRegion": "us-east-1", "md5OfBody": message["MD5OfBody"]})

        before = time.time()
        hidden = Redelivery(sqs, url).later(record)

        assert hidden == backoff_seconds(message["MessageId"], 1) and hidden <= FIRST_WINDOW_SECONDS
        held = sqs_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].queues["stripe-events.fifo"]._messages[0]
        assert before + hidden - 1 <= held.visible_at / 1000 <= time.time() + hidden + 1
