"""The templates: every Custom:: resource uses only properties its function accepts (read from
the functions' own property types with `--property-names`), and every Custom:: type has a function.
cfn-lint (run by `make lint`) checks everything else against the resource specification."""
import json
import os
import subprocess

import pytest
from cfnlint.decode import decode

from conftest import ROOT, binary

FUNCTIONS = {"Custom::EnvironmentPreflight": "preflight", "Custom::Network": "network", "Custom::FargateService": "service", "Custom::ServiceScaling": "scaling"}
TEMPLATES = sorted((ROOT / "cloudformation").glob("*.yaml")) + sorted((ROOT / "cloudformation" / "examples").glob("*.yaml"))


def property_names(function: str) -> set:
    env = dict(os.environ, AWS_REGION="us-east-1", AWS_EC2_METADATA_DISABLED="true")
    out = subprocess.run([str(binary(function)), "--property-names"], env=env, capture_output=True, text=True, timeout=60, check=True)
    return set(json.loads(out.stdout))


def custom_resources():
    for path in TEMPLATES:
        template, problems = decode(str(path))
        assert not problems, f"{path.name} does not parse: {problems}"
        for logical_id, resource in template.get("Resources", {}).items():
            if str(resource.get("Type", "")).startswith("Custom::"):
                yield path.name, logical_id, resource


@pytest.mark.parametrize("template,logical_id,resource", list(custom_resources()),
                         ids=[f"{t}:{l}" for t, l, _ in custom_resources()])
def test_custom_resources_use_only_properties_their_function_accepts(template, logical_id, resource):
    function = FUNCTIONS.get(resource["Type"])
    assert function, f"{template}:{logical_id} has type {resource['Type']}, which no function implements"
    used = set(resource.get("Properties", {})) - {"ServiceToken", "ServiceTimeout"}
    unknown = used - property_names(function)
    assert not unknown, f"{template}:{logical_id} sets {sorted(unknown)}, which {function} does not accept"
    assert "ServiceToken" in resource.get("Properties", {}), f"{template}:{logical_id} has no ServiceToken"


def test_every_function_answers_property_names():
    expected = {"preflight": "VpcCidr", "network": "NatGateways", "service": "CapacityProviderStrategy", "scaling": "MinCapacity"}
    for function, name in expected.items():
        assert name in property_names(function), function
