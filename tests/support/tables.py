"""Create the template's DynamoDB tables in moto, so every table is defined once: in template.yaml.

Reads each ``AWS::DynamoDB::Table`` resource and passes its key schema, attribute definitions,
indexes and billing mode straight to ``create_table``; a table or index added to the template
appears in the tests without touching them.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from localcloud.deploy import load_template as localcloud_template
from medspa.adapters.store import TableNames

TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"


def load_template(path: Path = TEMPLATE) -> dict[str, Any]:
    return localcloud_template(path)


def table_resources(template: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Logical id -> Properties of every DynamoDB table in the template."""
    return {
        logical_id: resource.get("Properties", {})
        for logical_id, resource in template["Resources"].items()
        if resource["Type"] == "AWS::DynamoDB::Table"
    }


def create_table_request(properties: Mapping[str, Any], table_name: str) -> dict[str, Any]:
    billing = properties.get("BillingMode", "PROVISIONED")
    throughput = properties.get("ProvisionedThroughput", {"ReadCapacityUnits": 5, "WriteCapacityUnits": 5})
    request: dict[str, Any] = {
        "TableName": table_name,
        "KeySchema": properties["KeySchema"],
        "AttributeDefinitions": properties["AttributeDefinitions"],
        "BillingMode": billing,
    }
    if billing == "PROVISIONED":
        request["ProvisionedThroughput"] = throughput
    for key in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
        if key in properties:
            request[key] = [
                {k: v for k, v in index.items() if billing == "PROVISIONED" or k != "ProvisionedThroughput"}
                for index in properties[key]
            ]
    if "StreamSpecification" in properties:
        request["StreamSpecification"] = {"StreamEnabled": True, **properties["StreamSpecification"]}
    return request


def create_tables(dynamodb: Any, template: Mapping[str, Any] | None = None, prefix: str = "test-") -> dict[str, str]:
    """Create every template table through ``dynamodb`` (a boto3 client); returns logical id -> table name."""
    template = template if template is not None else load_template()
    created: dict[str, str] = {}
    for logical_id, properties in table_resources(template).items():
        name = properties.get("TableName") if isinstance(properties.get("TableName"), str) else prefix + logical_id
        dynamodb.create_table(**create_table_request(properties, name))
        ttl = properties.get("TimeToLiveSpecification")
        if ttl and ttl.get("Enabled"):
            dynamodb.update_time_to_live(TableName=name, TimeToLiveSpecification=ttl)
        created[logical_id] = name
    return created


def table_names(created: Mapping[str, str], template: Mapping[str, Any] | None = None) -> TableNames:
    """Map tables to ``TableNames`` the way a deployed Lambda sees them: through the template's
    ``Globals.Function.Environment`` (``CLIENTS_TABLE: !Ref ClientsTable`` ...) and ``from_env``."""
    template = template if template is not None else load_template()
    variables = template["Globals"]["Function"]["Environment"]["Variables"]
    environ = {
        var: created[value["Ref"]]
        for var, value in variables.items()
        if isinstance(value, dict) and value.get("Ref") in created
    }
    return TableNames.from_env(environ)
