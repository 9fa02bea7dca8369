"""The templates: every Custom:: resource uses only properties its function accepts (read from
the functions' own property types with `--property-names`), every Custom:: type has a function, and
every Custom:: resource bounds its wait with ServiceTimeout; every parameter of the root stack has a
console label and group. cfn-lint and checkov (run by `make lint`) check everything else."""
import json
import re
import os
import subprocess

import pytest
from cfnlint.decode import decode

from conftest import ROOT, binary

FUNCTIONS = {"Custom::EnvironmentPreflight": "preflight", "Custom::Network": "network", "Custom::FargateService": "service", "Custom::ServiceScaling": "scaling"}
ROOT_TEMPLATE = ROOT / "cloudformation" / "environment.yaml"
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


@pytest.mark.parametrize("template,logical_id,resource", list(custom_resources()),
                         ids=[f"{t}:{l}" for t, l, _ in custom_resources()])
def test_custom_resources_set_a_service_timeout_cloudformation_accepts(template, logical_id, resource):
    # Without it CloudFormation waits an hour for an answer that may never come.
    timeout = resource.get("Properties", {}).get("ServiceTimeout")
    assert isinstance(timeout, int) and not isinstance(timeout, bool), \
        f"{template}:{logical_id} needs ServiceTimeout as an integer number of seconds (got {timeout!r})"
    assert 1 <= timeout <= 3600, f"{template}:{logical_id} has ServiceTimeout {timeout}; CloudFormation accepts 1..3600"


def test_every_root_parameter_has_a_console_label_and_a_group():
    template, problems = decode(str(ROOT_TEMPLATE))
    assert not problems, f"environment.yaml does not parse: {problems}"
    interface = template.get("Metadata", {}).get("AWS::CloudFormation::Interface", {})
    labels = interface.get("ParameterLabels", {})
    grouped = [name for group in interface.get("ParameterGroups", []) for name in group.get("Parameters", [])]
    parameters = list(template["Parameters"])
    assert [p for p in parameters if not str((labels.get(p) or {}).get("default", "")).strip()] == [], \
        "parameters without a ParameterLabels entry"
    assert [p for p in parameters if p not in grouped] == [], "parameters in no ParameterGroup"
    assert sorted({p for p in grouped if grouped.count(p) > 1}) == [], "parameters in more than one ParameterGroup"
    assert sorted((set(labels) | set(grouped)) - set(parameters)) == [], "labels or groups naming no parameter"


def parameters_of(name: str) -> dict:
    template, problems = decode(str(ROOT / "cloudformation" / name))
    assert not problems, f"{name} does not parse: {problems}"
    return template


def test_facts_written_in_more_than_one_template_agree_with_their_one_home():
    """CloudFormation has no shared constants: where a fact must appear in two templates, this
    test holds the copies equal to the home (the library's ecs.rs, stackctl, the Mappings)."""
    import stackctl

    root, service = parameters_of("environment.yaml"), parameters_of("service.yaml")
    ecs_rs = (ROOT / "functions/custom-resource/src/ecs.rs").read_text()
    weight_max = int(re.search(r"pub const WEIGHT_MAX: i64 = ([0-9_]+);", ecs_rs).group(1).replace("_", ""))
    base_max = int(re.search(r"pub const BASE_MAX: i64 = ([0-9_]+);", ecs_rs).group(1).replace("_", ""))
    assert (weight_max, base_max) == (stackctl.WEIGHT_MAX, stackctl.BASE_MAX)
    for template in (root, service):
        params = template["Parameters"]
        assert [params[p]["MaxValue"] for p in ("FargateWeight", "FargateSpotWeight", "FargateBase")] == \
            [weight_max, weight_max, base_max]
    # the task sizes: the service's Mappings are the home; both parameters allow exactly those
    sizes = list(service["Mappings"]["TaskSizes"])
    assert root["Parameters"]["TaskSize"]["AllowedValues"] == sizes
    assert service["Parameters"]["TaskSize"]["AllowedValues"] == sizes


def test_the_secret_names_are_padded_in_one_place():
    texts = {path.name: path.read_text() for path in TEMPLATES}
    padded = {name: text.count('",,,,,"') for name, text in texts.items() if '",,,,,"' in text}
    # environment.yaml pads what it passes; service.yaml's default is the empty padded list
    assert padded == {"environment.yaml": 1, "service.yaml": 1}, padded
    assert texts["service.yaml"].count("!Split") == 0, "service.yaml selects from the padded list as given"
