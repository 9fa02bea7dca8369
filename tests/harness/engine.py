"""The local CloudFormation engine: moto's CloudFormation API with our own stack orchestration.

moto 5.2.5 parses templates and serves the CloudFormation API, and its resource models create the
native resources, but its orchestration cannot run our stacks (docs/local-emulator.md): custom
resources get Create only and are never waited for, FAILED is ignored, the returned physical id is
ignored, `!GetAtt Child.Outputs.X` on a nested stack fails, updates re-create child stacks and
change-set deploys lose outputs and parameter overrides. This module replaces exactly that layer,
in-process, and nothing else:

- stack operations (CreateStack, UpdateStack, DeleteStack, CreateChangeSet, ExecuteChangeSet) run
  in a worker thread with CloudFormation's statuses and per-resource events, in dependency order;
  the API call returns when the operation ends or after `api_wait` seconds (DescribeStacks and
  DescribeStackEvents show progress meanwhile; the patched entry points are harness.engine_api);
- intrinsic functions are resolved here (Ref, GetAtt incl. `Outputs.X`, Sub, Join, Split, Select,
  If/NoValue, FindInMap, ImportValue, GetAZs, Base64, conditions); parameters are validated
  (AllowedValues, AllowedPattern, Min/MaxValue, required, unknown keys);
- updates diff each resource's *resolved* properties: unchanged resources (and nested stacks whose
  parameters did not change) are left alone; changed ones get one update; removed and replaced
  ones are deleted in the cleanup phase; a failure rolls back (create: delete what was made;
  update: revert updated resources, delete new ones);
- custom resources speak the real protocol: Create/Update/Delete events with stringified
  properties, OldResourceProperties and PhysicalResourceId, delivered to the Lambda function the
  ServiceToken names, answered on a loopback ResponseURL; FAILED fails the resource; a new
  physical id on Update is a replacement whose old id gets a Delete during cleanup;
- Lambda functions run for real: the zip moto stores is unpacked and its `bootstrap` run behind
  the Lambda Runtime API (harness.lambda_service.LocalLambda), with the function's timeout and
  environment and its role's credentials (harness.engine_iam authorizes its calls); moto's Invoke
  API is routed there too, and the functions' hand-overs go through it;
- AWS rules moto does not enforce (harness.engine_rules): physical-name limits, given or generated;
  native resources replaced when create-only properties change (new one first, old one in
  cleanup; refused for a custom name that stays); an ALB's two zones; the template's Rules.

Pinned to one moto version (MOTO_VERSION): the patched internals change between releases.
"""
import copy
import logging
import threading
import time
from pathlib import Path
from typing import Any, Optional
from urllib.parse import urlparse

import moto
from moto.cloudformation import models as cfn_models
from moto.cloudformation import parsing as cfn_parsing
from moto.cloudformation.exceptions import ValidationError
from moto.ec2.exceptions import InvalidSubnetIdError
from moto.ec2.models import ec2_backends
from moto.s3.models import s3_backends

from . import engine_rules
from .engine_api import StackApi
from .template import (MOTO_VERSION, ResourceFailed, Scope, check_rules, generated_name,
                       order, parse_template, pending_stack, resolve_parameters)
from .engine_host import FunctionHost
from .engine_state import NESTED, CustomResource, NestedStack, is_custom
from .net import QuietHTTPServer

log = logging.getLogger("local-engine")


# ---------------------------------------------------------------------------------------------
# The engine
# ---------------------------------------------------------------------------------------------
class Engine(StackApi, FunctionHost):
    def __init__(self, log_dir: Path, api_wait: float = 20.0, custom_resource_timeout: float = 900.0,
                 function_env: Optional[dict] = None, async_retry_delay: float = 2.0):
        if moto.__version__ != MOTO_VERSION:
            raise RuntimeError(f"the local engine patches moto {MOTO_VERSION} internals, found moto "
                               f"{moto.__version__}: install tests/constraints.txt")
        self.log_dir = Path(log_dir)
        self.api_wait = api_wait
        self.custom_resource_timeout = custom_resource_timeout
        self.function_env = dict(function_env or {})
        self.async_retry_delay = async_retry_delay
        self.moto_url = ""
        self.pending: dict = {}        # RequestId -> {"event": threading.Event, "answers": [...]}
        self.requests: list = []       # every custom-resource request sent, with its answer
        self.responses: list = []      # every body PUT to a ResponseURL, verbatim, oldest first
        self.functions: dict = {}      # (function arn, code sha) -> LocalLambda
        self.lock = threading.RLock()
        self.control = QuietHTTPServer(("127.0.0.1", 0), self._control_handler())
        self.control_url = f"http://127.0.0.1:{self.control.server_address[1]}"

    # -- lifecycle --------------------------------------------------------------------------
    def start(self, moto_url: str) -> "Engine":
        self.moto_url = moto_url
        self.log_dir.mkdir(parents=True, exist_ok=True)
        threading.Thread(target=self.control.serve_forever, daemon=True).start()
        self.install()
        return self

    def stop(self) -> None:
        for function in list(self.functions.values()):
            try:
                function.stop()
            except Exception:  # noqa: BLE001 - best effort at shutdown
                pass
        self.control.shutdown()
        self.control.server_close()

    # -- events -----------------------------------------------------------------------------
    def event(self, stack, logical_id, physical_id, resource_type, status, reason=None):
        stack.events.append(cfn_models.Event(
            stack_id=stack.stack_id, stack_name=stack.name, logical_resource_id=logical_id,
            physical_resource_id=physical_id or "", resource_type=resource_type,
            resource_status=status, resource_status_reason=reason, resource_properties=None))

    def stack_event(self, stack, status, reason=None):
        stack.status = status
        stack.stack_status_reason = reason
        self.event(stack, stack.name, stack.stack_id, NESTED, status, reason)

    # -- create -----------------------------------------------------------------------------
    def create(self, stack, body, template, raw, values, no_echo) -> None:
        state = stack.engine
        state.template, state.raw_params, state.no_echo = template, raw, no_echo
        stack.template, stack.template_dict = body, template
        stack.description = template.get("Description")
        self.stack_event(stack, "CREATE_IN_PROGRESS", "User Initiated")
        ctx = Scope(self.exports_of, stack, template, values, state.resources)
        try:
            for logical_id in order(template):
                spec = template["Resources"][logical_id]
                if spec.get("Condition") and not ctx.condition(spec["Condition"]):
                    continue
                self._create_resource(stack, ctx, logical_id, spec)
            self._finish_outputs(stack, ctx)
        except ResourceFailed as failure:
            reason = str(failure)
            self.stack_event(stack, "ROLLBACK_IN_PROGRESS", reason)
            ok = self._delete_all(stack)
            self.stack_event(stack, "ROLLBACK_COMPLETE" if ok else "ROLLBACK_FAILED", reason)
            return
        self.stack_event(stack, "CREATE_COMPLETE")

    def _create_resource(self, stack, ctx, logical_id, spec) -> Any:
        resource_type = spec["Type"]
        self.event(stack, logical_id, None, resource_type, "CREATE_IN_PROGRESS")
        props = None
        try:
            props = ctx.resolve(spec.get("Properties") or {})
            resource = self._do_create(stack, logical_id, resource_type, spec, props)
        except (ResourceFailed, ValidationError) as error:
            reason = _message(error)
            physical = getattr(error, "physical_id", None)
            if physical:  # a failed custom resource still gets its rollback Delete
                stack.engine.resources[logical_id] = CustomResource(logical_id, resource_type, physical)
                stack.engine.props[logical_id] = props
            self.event(stack, logical_id, physical, resource_type, "CREATE_FAILED", reason)
            raise ResourceFailed(f"The following resource(s) failed to create: [{logical_id}]. {reason}")
        stack.engine.resources[logical_id] = resource
        stack.engine.props[logical_id] = props
        self.event(stack, logical_id, resource.physical_resource_id, resource_type, "CREATE_COMPLETE")
        return resource

    def _do_create(self, stack, logical_id, resource_type, spec, props) -> Any:
        if is_custom(resource_type):
            answer = self.custom_request(stack, logical_id, resource_type, "Create", props)
            return CustomResource.from_answer(logical_id, resource_type, answer)
        if resource_type == NESTED:
            return NestedStack(logical_id, self._create_child(stack, logical_id, props))
        model = cfn_parsing.resource_class_from_type(resource_type)
        if model is None:
            raise ResourceFailed(f"the local engine (moto {MOTO_VERSION}) cannot create {resource_type}")
        name_property = cfn_parsing.resource_name_property_from_type(resource_type)
        name = props.get(name_property) if name_property else None
        problem = engine_rules.name_problem(resource_type, name_property, name) if name else None
        if problem:
            raise ResourceFailed(problem)
        name = name or generated_name(resource_type, stack.name, logical_id)
        if resource_type == "AWS::ElasticLoadBalancingV2::LoadBalancer":
            self._check_zones(stack, props)
        try:
            resource = model.create_from_cloudformation_json(
                name, {"Type": resource_type, "Properties": copy.deepcopy(props)}, stack.account_id,
                stack.region_name, LogicalId=logical_id, StackId=stack.stack_id, ResourceType=resource_type)
        except Exception as error:  # noqa: BLE001 - moto raises its own error types
            raise ResourceFailed(f"{resource_type} {logical_id}: {_message(error)}")
        resource.cf_resource_type = resource_type
        resource.logical_resource_id = logical_id
        self._tag(stack, logical_id, resource)
        return resource

    def _check_zones(self, stack, props) -> None:
        """An Application Load Balancer needs subnets in two Availability Zones; moto takes one."""
        if props.get("Type", "application") != "application":
            return
        subnets = list(props.get("Subnets") or []) + [m.get("SubnetId") for m in props.get("SubnetMappings") or []]
        ec2 = ec2_backends[stack.account_id][stack.region_name]
        try:
            zones = {ec2.get_subnet(subnet).availability_zone for subnet in subnets}
        except InvalidSubnetIdError:
            return  # moto refuses an unknown subnet itself
        if len(zones) < 2:
            raise ResourceFailed(engine_rules.TWO_ZONES)

    def _tag(self, stack, logical_id, resource) -> None:
        from moto.ec2.models.core import TaggedEC2Resource

        if isinstance(resource, TaggedEC2Resource):
            ec2_backends[stack.account_id][stack.region_name].create_tags([resource.physical_resource_id], {
                "aws:cloudformation:stack-name": stack.name, "aws:cloudformation:stack-id": stack.stack_id,
                "aws:cloudformation:logical-id": logical_id})

    def _finish_outputs(self, stack, ctx) -> None:
        outputs, exports = [], []
        for key, spec in (ctx.template.get("Outputs") or {}).items():
            if spec.get("Condition") and not ctx.condition(spec["Condition"]):
                continue
            value = ctx.resolve(spec.get("Value"))
            value = ",".join(map(str, value)) if isinstance(value, list) else str(value)
            outputs.append(cfn_parsing.Output(key=key, value=value, description=spec.get("Description")))
            if spec.get("Export"):
                exports.append(cfn_parsing.Export(stack.stack_id, str(ctx.resolve(spec["Export"]["Name"])), value))
        backend = self.backend(stack.account_id, stack.region_name)
        for export in exports:
            owner = backend.exports.get(export.name)
            if owner is not None and owner.exporting_stack_id != stack.stack_id:
                raise ResourceFailed(f"Export with name {export.name} is already exported by stack {owner.exporting_stack_id}")
        for old in stack.engine.exports:
            if old.name not in {e.name for e in exports}:
                self._check_unused(backend, old.name)
                backend.exports.pop(old.name, None)
        for export in exports:
            backend.exports[export.name] = export
        stack.engine.outputs, stack.engine.exports = outputs, exports
        stack.engine.imports = set(ctx.imports)

    def _check_unused(self, backend, export_name) -> None:
        for other in backend.stacks.values():
            state = getattr(other, "engine", None)
            if state and export_name in state.imports and other.status != "DELETE_COMPLETE":
                raise ResourceFailed(f"Export {export_name} cannot be deleted as it is in use by {other.name}")

    # -- nested stacks ----------------------------------------------------------------------
    def fetch_template(self, stack, url: str) -> str:
        parts = urlparse(url)
        if parts.scheme not in ("http", "https"):
            raise ResourceFailed(f"TemplateURL '{url}' must be an S3 URL: run `aws cloudformation package` (make package) first")
        if parts.hostname in ("localhost", "127.0.0.1") or parts.hostname.startswith("s3.") or parts.hostname == "s3.amazonaws.com":
            bucket, key = parts.path.lstrip("/").split("/", 1)
        else:
            bucket, key = parts.hostname.split(".")[0], parts.path.lstrip("/")
        try:
            return s3_backends[stack.account_id]["aws"].get_object(bucket, key).value.decode()
        except Exception as error:  # noqa: BLE001
            raise ResourceFailed(f"TemplateURL {url}: {_message(error)}")

    def _child_template(self, stack, props) -> tuple:
        """(body, template, raw, values, no_echo) of a nested stack resource's properties, its
        Rules checked against `stack` (the child, or what it will be)."""
        body = self.fetch_template(stack, props.get("TemplateURL", ""))
        template = parse_template(body)
        given = {k: (",".join(v) if isinstance(v, list) else str(v)) for k, v in (props.get("Parameters") or {}).items()}
        raw, values, no_echo = resolve_parameters(template, given)
        check_rules(self.exports_of, stack, template, values)
        return body, template, raw, values, no_echo

    def _create_child(self, parent, logical_id, props):
        backend = self.backend(parent.account_id, parent.region_name)
        name = cfn_parsing.generate_resource_name(NESTED, parent.name, logical_id)
        body, template, raw, values, no_echo = self._child_template(pending_stack(backend, name), props)
        child = self._new_stack(backend, name, dict(parent.tags), parent=parent)
        self.create(child, body, template, raw, values, no_echo)
        if child.status != "CREATE_COMPLETE":
            raise ResourceFailed(f"Embedded stack {child.stack_id} was not successfully created: {child.stack_status_reason}")
        return child

    # -- update -----------------------------------------------------------------------------
    def update(self, stack, body, template, raw, values, no_echo) -> None:
        state = stack.engine
        old = (stack.template, state.template, dict(state.raw_params), list(state.no_echo),
               dict(state.resources), dict(state.props), list(state.outputs), list(state.exports))
        self.stack_event(stack, "UPDATE_IN_PROGRESS", "User Initiated")
        ctx = Scope(self.exports_of, stack, template, values, state.resources)
        actions, cleanup = [], []
        try:
            for logical_id in order(template):
                spec = template["Resources"][logical_id]
                if spec.get("Condition") and not ctx.condition(spec["Condition"]):
                    # A resource whose condition turned false is deleted in cleanup, like a removed one.
                    state.resources.pop(logical_id, None)
                    continue
                self._update_resource(stack, ctx, logical_id, spec, old[4], old[5], actions, cleanup)
            state.template, state.raw_params, state.no_echo = template, raw, no_echo
            self._finish_outputs(stack, ctx)
        except ResourceFailed as failure:
            reason = str(failure)
            self.stack_event(stack, "UPDATE_ROLLBACK_IN_PROGRESS", reason)
            ok = self._revert(stack, actions)
            stack.template, state.template, state.raw_params, state.no_echo = old[0], old[1], old[2], old[3]
            state.resources.clear()
            state.resources.update(old[4])
            state.props.clear()
            state.props.update(old[5])
            state.outputs, state.exports = old[6], old[7]
            if ok:
                self.stack_event(stack, "UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS")
            self.stack_event(stack, "UPDATE_ROLLBACK_COMPLETE" if ok else "UPDATE_ROLLBACK_FAILED", reason)
            return
        stack.template, stack.template_dict = body, template
        stack.description = template.get("Description")
        stack.parameters = dict(raw)
        self.stack_event(stack, "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS")
        removed = [(lid, res) for lid, res in old[4].items() if lid not in state.resources]
        for logical_id, resource in reversed(removed):
            self._delete_resource(stack, logical_id, resource, old[1]["Resources"].get(logical_id, {}), old[5].get(logical_id))
        for logical_id, resource, props in reversed(cleanup):
            self._delete_resource(stack, logical_id, resource, template["Resources"][logical_id], props)
        for logical_id, _ in removed:
            state.props.pop(logical_id, None)
        self.stack_event(stack, "UPDATE_COMPLETE")

    def _update_resource(self, stack, ctx, logical_id, spec, old_resources, old_props, actions, cleanup):
        state = stack.engine
        resource_type = spec["Type"]
        current = old_resources.get(logical_id)
        if current is None:
            resource = self._create_resource(stack, ctx, logical_id, spec)
            actions.append(("create", logical_id, resource, None, None))
            return
        try:
            props = ctx.resolve(spec.get("Properties") or {})
        except (ResourceFailed, ValidationError) as error:
            self.event(stack, logical_id, current.physical_resource_id, resource_type, "UPDATE_FAILED", _message(error))
            raise ResourceFailed(f"The following resource(s) failed to update: [{logical_id}]. {_message(error)}")
        if current.cf_resource_type != resource_type:
            # A new type is a new resource: create it, delete the old one during cleanup.
            del state.resources[logical_id]
            resource = self._create_resource(stack, ctx, logical_id, spec)
            actions.append(("create", logical_id, resource, None, None))
            cleanup.append((logical_id, current, old_props.get(logical_id)))
            return
        if props == old_props.get(logical_id):
            return
        if engine_rules.requires_replacement(resource_type, old_props.get(logical_id), props):
            self._replace(stack, logical_id, spec, current, old_props.get(logical_id), props, actions, cleanup)
            return
        self.event(stack, logical_id, current.physical_resource_id, resource_type, "UPDATE_IN_PROGRESS")
        try:
            resource = self._do_update(stack, logical_id, resource_type, current, old_props.get(logical_id), props)
        except (ResourceFailed, ValidationError) as error:
            reason = _message(error)
            self.event(stack, logical_id, current.physical_resource_id, resource_type, "UPDATE_FAILED", reason)
            if is_custom(resource_type):
                # CloudFormation rolls a failed custom resource back with an Update to the old properties.
                actions.append(("update", logical_id, current, old_props.get(logical_id), props))
            raise ResourceFailed(f"The following resource(s) failed to update: [{logical_id}]. {reason}")
        state.resources[logical_id] = resource
        state.props[logical_id] = props
        actions.append(("update", logical_id, current, old_props.get(logical_id), props))
        if resource.physical_resource_id != current.physical_resource_id and resource_type != NESTED:
            self.event(stack, logical_id, resource.physical_resource_id, resource_type, "UPDATE_COMPLETE",
                       "Requested update required the provider to create a new physical resource")
            if is_custom(resource_type):
                cleanup.append((logical_id, current, old_props.get(logical_id)))
        else:
            self.event(stack, logical_id, resource.physical_resource_id, resource_type, "UPDATE_COMPLETE")

    def _replace(self, stack, logical_id, spec, current, old_props, props, actions, cleanup) -> None:
        """A native resource whose create-only properties changed is replaced as CloudFormation does
        it: the new one first (under a new name), the old one deleted in cleanup; refused when the
        template names it and the name stays, since both cannot exist at once."""
        resource_type = spec["Type"]
        name_property = cfn_parsing.resource_name_property_from_type(resource_type)
        name = props.get(name_property) if name_property else None
        if name and name == (old_props or {}).get(name_property):
            reason = engine_rules.custom_name_replacement(name)
            self.event(stack, logical_id, current.physical_resource_id, resource_type, "UPDATE_FAILED", reason)
            raise ResourceFailed(f"The following resource(s) failed to update: [{logical_id}]. {reason}")
        self.event(stack, logical_id, current.physical_resource_id, resource_type, "UPDATE_IN_PROGRESS", engine_rules.REPLACING)
        try:
            resource = self._do_create(stack, logical_id, resource_type, spec, props)
        except (ResourceFailed, ValidationError) as error:
            self.event(stack, logical_id, current.physical_resource_id, resource_type, "UPDATE_FAILED", _message(error))
            raise ResourceFailed(f"The following resource(s) failed to update: [{logical_id}]. {_message(error)}")
        stack.engine.resources[logical_id] = resource
        stack.engine.props[logical_id] = props
        actions.append(("create", logical_id, resource, None, props))
        cleanup.append((logical_id, current, old_props))
        self.event(stack, logical_id, resource.physical_resource_id, resource_type, "UPDATE_COMPLETE")

    def _do_update(self, stack, logical_id, resource_type, current, old_props, props) -> Any:
        if is_custom(resource_type):
            answer = self.custom_request(stack, logical_id, resource_type, "Update", props,
                                         old_props=old_props, physical_id=current.physical_resource_id)
            return CustomResource.from_answer(logical_id, resource_type, answer)
        if resource_type == NESTED:
            self._update_child(current.stack, props)
            return current
        model = cfn_parsing.resource_class_from_type(resource_type)
        if hasattr(model.update_from_cloudformation_json, "__isabstractmethod__"):
            raise ResourceFailed(f"the local engine (moto {MOTO_VERSION}) cannot update {resource_type} {logical_id} in place")
        name_property = cfn_parsing.resource_name_property_from_type(resource_type)
        name = (props.get(name_property) if name_property else None) or getattr(current, "name", None) \
            or generated_name(resource_type, stack.name, logical_id)
        try:
            resource = model.update_from_cloudformation_json(
                original_resource=current, new_resource_name=name,
                cloudformation_json={"Type": resource_type, "Properties": copy.deepcopy(props)},
                account_id=stack.account_id, region_name=stack.region_name)
        except Exception as error:  # noqa: BLE001
            raise ResourceFailed(f"{resource_type} {logical_id}: {_message(error)}")
        resource.cf_resource_type = resource_type
        resource.logical_resource_id = logical_id
        return resource

    def _update_child(self, child, props) -> None:
        body, template, raw, values, no_echo = self._child_template(child, props)
        if template == child.engine.template and raw == child.engine.raw_params:
            return
        self.update(child, body, template, raw, values, no_echo)
        if child.status != "UPDATE_COMPLETE":
            raise ResourceFailed(f"Embedded stack {child.stack_id} was not successfully updated: {child.stack_status_reason}")

    def _revert(self, stack, actions) -> bool:
        """Undo an update's actions, newest first. True when everything was undone."""
        ok = True
        for kind, logical_id, previous, old_props, new_props in reversed(actions):
            state = stack.engine
            if kind == "create":
                ok &= self._delete_resource(stack, logical_id, previous, state.template["Resources"].get(logical_id, {}), new_props)
                continue
            resource_type = previous.cf_resource_type
            now = state.resources.get(logical_id, previous)
            self.event(stack, logical_id, now.physical_resource_id, resource_type, "UPDATE_IN_PROGRESS", "Rollback")
            try:
                if resource_type == NESTED:
                    self._update_child(now.stack, old_props)
                elif is_custom(resource_type):
                    self.custom_request(stack, logical_id, resource_type, "Update", old_props,
                                        old_props=new_props, physical_id=now.physical_resource_id)
                    if now.physical_resource_id != previous.physical_resource_id:
                        self._delete_resource(stack, logical_id, now, {}, new_props)
                else:
                    self._do_update(stack, logical_id, resource_type, now, new_props, old_props)
                self.event(stack, logical_id, previous.physical_resource_id, resource_type, "UPDATE_COMPLETE")
            except (ResourceFailed, ValidationError) as error:
                ok = False
                self.event(stack, logical_id, now.physical_resource_id, resource_type, "UPDATE_FAILED", _message(error))
        return ok

    # -- delete -----------------------------------------------------------------------------
    def delete(self, stack) -> None:
        backend = self.backend(stack.account_id, stack.region_name)
        try:
            for export in stack.engine.exports:
                self._check_unused(backend, export.name)
        except ResourceFailed as failure:
            self.stack_event(stack, "DELETE_FAILED", str(failure))
            return
        self.stack_event(stack, "DELETE_IN_PROGRESS", "User Initiated")
        if not self._delete_all(stack):
            self.stack_event(stack, "DELETE_FAILED", "The following resource(s) failed to delete: "
                             f"{sorted(stack.engine.resources)}.")
            return
        for export in stack.engine.exports:
            backend.exports.pop(export.name, None)
        stack.engine.exports, stack.engine.outputs = [], []
        self.stack_event(stack, "DELETE_COMPLETE")
        backend.stacks.pop(stack.stack_id, None)
        backend.deleted_stacks[stack.stack_id] = stack

    def _delete_all(self, stack) -> bool:
        state = stack.engine
        resources = state.template.get("Resources") or {}
        names = [n for n in (order(state.template) if resources else []) if n in state.resources]
        names += [n for n in state.resources if n not in names]
        ok = True
        for logical_id in reversed(names):
            ok &= self._delete_resource(stack, logical_id, state.resources[logical_id], resources.get(logical_id, {}),
                                        state.props.get(logical_id))
        return ok

    def _delete_resource(self, stack, logical_id, resource, spec, props) -> bool:
        resource_type = resource.cf_resource_type
        physical = resource.physical_resource_id
        if spec.get("DeletionPolicy") in ("Retain", "RetainExceptOnCreate"):
            self.event(stack, logical_id, physical, resource_type, "DELETE_SKIPPED")
            stack.engine.resources.pop(logical_id, None)
            return True
        self.event(stack, logical_id, physical, resource_type, "DELETE_IN_PROGRESS")
        try:
            if is_custom(resource_type):
                self.custom_request(stack, logical_id, resource_type, "Delete", props or {}, physical_id=physical)
            elif resource_type == NESTED:
                child = resource.stack
                if child.status != "DELETE_COMPLETE":
                    self.delete(child)
                if child.status != "DELETE_COMPLETE":
                    raise ResourceFailed(f"Embedded stack {child.stack_id} was not successfully deleted: {child.stack_status_reason}")
            else:
                self._delete_native(stack, resource, spec, props or {})
        except (ResourceFailed, ValidationError) as error:
            self.event(stack, logical_id, physical, resource_type, "DELETE_FAILED", _message(error))
            return False
        if stack.engine.resources.get(logical_id) is resource:
            del stack.engine.resources[logical_id]
        self.event(stack, logical_id, physical, resource_type, "DELETE_COMPLETE")
        return True

    def _delete_native(self, stack, resource, spec, props) -> None:
        from .engine_models import DELETERS

        resource_type = resource.cf_resource_type
        model = cfn_parsing.resource_class_from_type(resource_type)
        deleter = DELETERS.get(resource_type)
        if deleter is None and not hasattr(resource, "delete") and hasattr(model.delete_from_cloudformation_json, "__isabstractmethod__"):
            # moto would skip it silently and leave it behind; say so instead.
            raise ResourceFailed(f"the local engine (moto {MOTO_VERSION}) cannot delete {resource_type}")
        last = None
        for _ in range(3):  # retried like moto's own ordering does for dependency violations
            try:
                if deleter is not None:
                    deleter(resource, props, stack.account_id, stack.region_name)
                elif hasattr(resource, "delete"):
                    resource.delete(stack.account_id, stack.region_name)
                else:
                    model.delete_from_cloudformation_json(resource.physical_resource_id, {"Type": resource_type, **spec},
                                                          stack.account_id, stack.region_name)
                return
            except Exception as error:  # noqa: BLE001 - moto raises its own error types
                last = error
                time.sleep(0.2)
        raise ResourceFailed(f"{resource_type}: {_message(last)}")

def _message(error: Exception) -> str:
    for attribute in ("message", "description"):
        value = getattr(error, attribute, None)
        if isinstance(value, str) and value:
            return value
    return str(error) or type(error).__name__

