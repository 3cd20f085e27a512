"""Appointment-lifecycle automation for med spas: the shared package of every Lambda function.

Layers: ``domain`` (pure policy decisions: no boto3, pynamodb, stripe or os.environ; ``now`` is an
argument), ``policy`` (validated policy packs, one per location), ``adapters`` (DynamoDB, Stripe,
messaging, Step Functions behind small interfaces) and ``services`` (use cases the handlers call).
"""
