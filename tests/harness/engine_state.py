"""What the local engine keeps in a stack besides moto's native models: custom resources (their
physical id and Data), nested stacks, and the engine's own state per stack (template, parameters,
resources, resolved properties, outputs) with the views moto's API responses read."""
from typing import Any, Optional

from .template import ResourceFailed

NESTED = "AWS::CloudFormation::Stack"


def is_custom(resource_type: str) -> bool:
    return resource_type.startswith("Custom::") or resource_type == "AWS::CloudFormation::CustomResource"


# ---------------------------------------------------------------------------------------------
# Resource objects the engine keeps in a stack (next to moto's native models)
# ---------------------------------------------------------------------------------------------
class CustomResource:
    def __init__(self, logical_id: str, resource_type: str, physical_id: str, data: Optional[dict] = None):
        self.logical_resource_id = logical_id
        self.cf_resource_type = resource_type
        self.physical_resource_id = physical_id
        self.data = data or {}

    @classmethod
    def from_answer(cls, logical_id: str, resource_type: str, answer: dict) -> "CustomResource":
        return cls(logical_id, resource_type, answer["PhysicalResourceId"], answer.get("Data"))

    def get_cfn_attribute(self, name: str) -> Any:
        if name not in self.data:
            raise ResourceFailed(f"CustomResource attribute error: Vendor response doesn't contain {name} key "
                                 f"in object {self.logical_resource_id} (keys: {sorted(self.data)})")
        return self.data[name]


class NestedStack:
    def __init__(self, logical_id: str, stack):
        self.logical_resource_id = logical_id
        self.cf_resource_type = NESTED
        self.stack = stack

    @property
    def physical_resource_id(self) -> str:
        return self.stack.stack_id

    def get_cfn_attribute(self, name: str) -> Any:
        if name.startswith("Outputs."):
            key = name.split(".", 1)[1]
            for output in self.stack.engine.outputs:
                if output.key == key:
                    return output.value
            raise ResourceFailed(f"Template error: nested stack {self.logical_resource_id} has no output {key}")
        raise ResourceFailed(f"Template error: {self.logical_resource_id} has no attribute {name}")


class StackState:
    """What the engine knows about one stack; moto's Stack object points here (stack.engine)."""

    def __init__(self, template: dict, raw_params: dict, no_echo: list, parent=None):
        self.template = template
        self.raw_params = raw_params       # effective string values, defaults included
        self.no_echo = no_echo
        self.resources: dict = {}          # logical id -> resource object
        self.props: dict = {}              # logical id -> resolved properties (None = no Properties)
        self.outputs: list = []
        self.exports: list = []
        self.imports: set = set()
        self.parent = parent


class ResourceView:
    """Stands in for moto's ResourceMap on a Stack: what the API layer reads from it."""

    def __init__(self, state: StackState):
        self._state = state

    def values(self):
        return list(self._state.resources.values())

    @property
    def resolved_parameters(self) -> dict:
        return dict(self._state.raw_params)

    @property
    def no_echo_parameter_keys(self) -> list:
        return list(self._state.no_echo)


class OutputView:
    def __init__(self, state: StackState):
        self._state = state

    def values(self):
        return list(self._state.outputs)

    @property
    def exports(self):
        return list(self._state.exports)
