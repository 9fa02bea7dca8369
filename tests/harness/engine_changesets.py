"""CreateChangeSet as CloudFormation does it, for the local engine (moto's loses parameter
overrides and fails UsePreviousValue on CREATE), and the change list a change set shows."""
from moto.cloudformation import models as cfn_models
from moto.cloudformation.exceptions import ValidationError
from moto.cloudformation.utils import generate_changeset_id, validate_create_change_set
from moto.core.responses import ActionResult

from .template import check_rules, dependencies, parse_template, pending_stack, resolve_parameters


def create_change_set_response(engine):
    """CreateChangeSet as CloudFormation does it: UsePreviousValue resolved against the stack (or the
    defaults on CREATE), an empty change set FAILED with the message `aws cloudformation deploy`
    recognises, the resolved parameters kept for ExecuteChangeSet."""

    def create_change_set(self) -> ActionResult:
        backend = self.cloudformation_backend
        stack_name = self._get_param("StackName")
        change_set_name = self._get_param("ChangeSetName")
        validate_create_change_set(change_set_name)
        kind = self._get_param("ChangeSetType", "UPDATE")
        body = self._get_param("TemplateBody")
        url = self._get_param("TemplateURL")
        incoming = self._get_param("Parameters", [])
        tags = {item["Key"]: item["Value"] for item in self._get_param("Tags", [])}
        existing = next((s for s in backend.stacks.values() if s.name == stack_name), None)
        if kind == "CREATE" and existing is not None and existing.status != "REVIEW_IN_PROGRESS":
            raise ValidationError(message=f"Stack [{stack_name}] already exists and cannot be created again with the changeSet [{change_set_name}].")
        if kind == "UPDATE" and existing is None:
            raise ValidationError(message=f"Stack [{stack_name}] does not exist")
        if self._get_bool_param("UsePreviousTemplate", False):
            body = existing.template
        elif url:
            body = self._get_stack_from_s3_url(url)
        template = parse_template(body)
        given = {p["ParameterKey"]: p["ParameterValue"] for p in incoming if "ParameterValue" in p}
        previous = frozenset(p["ParameterKey"] for p in incoming if p.get("UsePreviousValue"))
        prior = existing.engine.raw_params if kind == "UPDATE" else None
        raw, values, no_echo = resolve_parameters(template, given, prior, previous if kind == "UPDATE" else frozenset())
        check_rules(engine.exports_of, existing if kind == "UPDATE" else pending_stack(backend, stack_name), template, values)
        if kind == "UPDATE":
            engine._check_updatable(existing)
            stack = existing
        else:
            stack = existing or engine._new_stack(backend, stack_name, tags)
            if existing is None:
                engine.stack_event(stack, "REVIEW_IN_PROGRESS", "User Initiated")
        change_set_id = generate_changeset_id(change_set_name, backend.region_name, backend.account_id)
        change_set = cfn_models.ChangeSet.__new__(cfn_models.ChangeSet)
        change_set.change_set_type, change_set.change_set_id, change_set.change_set_name = kind, change_set_id, change_set_name
        change_set.stack, change_set.stack_id, change_set.stack_name = stack, stack.stack_id, stack.name
        change_set.notification_arns, change_set.description = [], self._get_param("Description")
        change_set.tags, change_set.role_arn = tags, self._get_param("RoleARN")
        change_set.template, change_set.template_dict, change_set.parameters = body, template, dict(raw)
        change_set.engine_params = (raw, values, no_echo)
        change_set.creation_time = cfn_models.utcnow()
        change_set.changes = _changes(stack, template, raw, kind)
        if kind == "UPDATE" and template == stack.engine.template and raw == stack.engine.raw_params:
            change_set.status, change_set.execution_status = "FAILED", "UNAVAILABLE"
            change_set.status_reason = ("The submitted information didn't contain changes. Submit different "
                                        "information to create a change set.")
        else:
            change_set.status, change_set.execution_status, change_set.status_reason = "CREATE_COMPLETE", "AVAILABLE", None
        backend.change_sets[change_set_id] = change_set
        return ActionResult({"Id": change_set_id, "StackId": stack.stack_id})

    return create_change_set


def _changes(stack, template, raw, kind) -> list:
    """Change-set entries: Add/Remove by logical id; Modify where the template entry changed or it
    refers (directly or through other resources) to a parameter whose value changed."""
    new = template["Resources"]
    if kind == "CREATE":
        return [cfn_models.Change("Add", name, spec["Type"]) for name, spec in new.items()]
    old = stack.engine.template.get("Resources") or {}
    changed = {k for k in set(raw) | set(stack.engine.raw_params) if raw.get(k) != stack.engine.raw_params.get(k)}
    modified = {n for n in new if n in old and new[n] != old[n]} | {n for n in new if n in old and dependencies(new[n]) & changed}
    grew = True
    while grew:
        more = {n for n in new if n in old and n not in modified and dependencies(new[n]) & modified}
        grew = bool(more)
        modified |= more
    changes = [cfn_models.Change("Add", n, s["Type"]) for n, s in new.items() if n not in old]
    changes += [cfn_models.Change("Modify", n, new[n]["Type"]) for n in new if n in modified]
    changes += [cfn_models.Change("Remove", n, s["Type"]) for n, s in old.items() if n not in new]
    return changes
