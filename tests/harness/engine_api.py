"""The CloudFormation API surface of the local engine (harness.engine): moto's stack operations
(CreateStack, UpdateStack, DeleteStack, ExecuteChangeSet) and Lambda Invoke patched to run through
the engine, each stack operation in a worker thread that the API call waits on for up to
`api_wait` seconds. A mixin of harness.engine.Engine, which holds the orchestration it calls
(create, update, delete).
"""
import logging
import threading

from moto.awslambda import models as lambda_models
from moto.cloudformation import models as cfn_models
from moto.cloudformation import responses as cfn_responses
from moto.cloudformation.exceptions import ValidationError
from moto.cloudformation.utils import generate_stack_id

from . import engine_events, engine_iam
from .engine_changesets import create_change_set_response
from .engine_state import OutputView, ResourceView, StackState
from .template import check_rules, parse_template, pending_stack, resolve_parameters

log = logging.getLogger("local-engine")


class StackApi:
    """The patched moto entry points; `install` switches them on for one engine."""

    @staticmethod
    def backend(account: str, region: str):
        return cfn_models.cloudformation_backends[account][region]

    def exports_of(self, account: str, region: str) -> dict:
        return self.backend(account, region).exports

    def install(self) -> None:
        """Replace moto's stack orchestration (and Lambda invocation) with this engine's."""
        from . import engine_models

        engine_models.install()
        engine_iam.install()
        engine = self
        backend_class = cfn_models.CloudFormationBackend

        def create_stack(backend, name, template, parameters, notification_arns=None, tags=None,
                         role_arn=None, enable_termination_protection=False, timeout_in_mins=None,
                         stack_policy_body=None):
            return engine.api_create_stack(backend, name, template, parameters, tags or {})

        def update_stack(backend, name, template, role_arn, parameters, tags):
            return engine.api_update_stack(backend, name, template, parameters, tags)

        def delete_stack(backend, name_or_stack_id):
            return engine.api_delete_stack(backend, name_or_stack_id)

        def execute_change_set(backend, change_set_name, stack_name=None):
            return engine.api_execute_change_set(backend, change_set_name, stack_name)

        backend_class.create_stack = create_stack
        backend_class.update_stack = update_stack
        backend_class.delete_stack = delete_stack
        backend_class.execute_change_set = execute_change_set
        cfn_responses.CloudFormationResponse.create_change_set = create_change_set_response(engine)
        # moto's check raises "No updates are to be performed." for UsePreviousValue-only updates
        # before reaching the backend; the engine decides that itself on the resolved values.
        cfn_responses.CloudFormationResponse._validate_different_update = lambda *a, **k: None
        cfn_responses.CloudFormationResponse._validate_status = lambda *a, **k: None

        def invoke(function, body, request_headers, response_headers):
            return engine.invoke_api(function, body, request_headers, response_headers)

        lambda_models.LambdaFunction.invoke = invoke
        # EventBridge invokes its Lambda targets asynchronously.
        engine_events.invoker = lambda function, event: engine.local_function(function).invoke_async(event)

    # -- API entry points -------------------------------------------------------------------
    def _run(self, work, stack) -> None:
        done = threading.Event()

        def target():
            try:
                work()
            except Exception as error:  # noqa: BLE001 - never leave a stack IN_PROGRESS silently
                log.exception("engine operation failed")
                stack.status = stack.status.replace("IN_PROGRESS", "FAILED") if "IN_PROGRESS" in stack.status else stack.status
                stack.stack_status_reason = f"local engine error: {error}"
            finally:
                done.set()

        threading.Thread(target=target, daemon=True, name=f"engine-{stack.name}").start()
        done.wait(self.api_wait)

    def _new_stack(self, backend, name: str, tags: dict, parent=None):
        stack_id = generate_stack_id(name, backend.region_name, backend.account_id)
        stack = cfn_models.Stack(stack_id=stack_id, name=name, template={}, parameters={},
                                 account_id=backend.account_id, region_name=backend.region_name, tags=tags)
        stack.engine = StackState({}, {}, [], parent=parent)
        stack.resource_map = ResourceView(stack.engine)
        stack.output_map = OutputView(stack.engine)
        stack.stack_status_reason = None
        if parent is not None:
            stack.parent_id = parent.stack_id
            stack.root_id = getattr(parent, "root_id", None) or parent.stack_id
        backend.stacks[stack_id] = stack
        return stack

    def api_create_stack(self, backend, name, body, parameters, tags):
        if any(s.name == name for s in backend.stacks.values()):
            raise cfn_models.AlreadyExistsException(f"Stack [{name}] already exists")
        template = parse_template(body)
        raw, values, no_echo = resolve_parameters(template, parameters)
        check_rules(self.exports_of, pending_stack(backend, name), template, values)
        stack = self._new_stack(backend, name, tags)
        self._run(lambda: self.create(stack, body, template, raw, values, no_echo), stack)
        return stack

    def api_update_stack(self, backend, name, body, incoming, tags):
        stack = backend.get_stack(name)
        self._check_updatable(stack)
        template = parse_template(body)
        given = {p["ParameterKey"]: p["ParameterValue"] for p in incoming if "ParameterValue" in p}
        previous = frozenset(p["ParameterKey"] for p in incoming if p.get("UsePreviousValue"))
        raw, values, no_echo = resolve_parameters(template, given, stack.engine.raw_params, previous)
        check_rules(self.exports_of, stack, template, values)
        if template == stack.engine.template and raw == stack.engine.raw_params:
            raise ValidationError(stack.name, message="No updates are to be performed.")
        self._run(lambda: self.update(stack, body, template, raw, values, no_echo), stack)
        return stack

    def api_delete_stack(self, backend, name_or_id):
        try:
            stack = backend.get_stack(name_or_id)
        except ValidationError:
            return  # deleting a stack that does not exist succeeds, as on AWS
        busy = stack.status.endswith("_IN_PROGRESS") and stack.status != "REVIEW_IN_PROGRESS"
        if stack.status == "DELETE_COMPLETE" or busy:
            return
        self._run(lambda: self.delete(stack), stack)

    def api_execute_change_set(self, backend, change_set_name, stack_name):
        change_set = backend.describe_change_set(change_set_name)
        if change_set.execution_status != "AVAILABLE":
            raise ValidationError(message=f"ChangeSet [{change_set.change_set_id}] cannot be executed in its current status of [{change_set.status}]")
        stack = backend.stacks[change_set.stack_id]
        change_set.execution_status = "EXECUTE_IN_PROGRESS"
        raw, values, no_echo = change_set.engine_params
        template = change_set.template_dict

        def work():
            if change_set.change_set_type == "CREATE":
                self.create(stack, change_set.template, template, raw, values, no_echo)
            else:
                self.update(stack, change_set.template, template, raw, values, no_echo)
            ok = stack.status in ("CREATE_COMPLETE", "UPDATE_COMPLETE")
            change_set.execution_status = "EXECUTE_COMPLETE" if ok else "EXECUTE_FAILED"

        self._run(work, stack)

    def _check_updatable(self, stack) -> None:
        if stack.status not in ("CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE"):
            raise ValidationError(stack.stack_id, message=f"Stack:{stack.stack_id} is in {stack.status} state and can not be updated.")
