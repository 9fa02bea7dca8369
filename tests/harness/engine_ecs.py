"""moto 5.2.5's ECS patched for the local engine at import time (moto's files stay as they are;
the scheduler itself is engine_ecs_scheduler.py): Fargate services with a capacity provider
strategy get RUNNING tasks placed per provider the way ECS places them, so a local demo can list a service's tasks per capacity provider. A task
starts only as Fargate would start it, by default (knobs in harness.aws_rules): in a subnet of a
zone that offers Fargate (LOCAL_AWS_FARGATE_ZONES) and with its images present when they are in
this account's ECR (LOCAL_AWS_ECR_PULL). On demand, FARGATE_SPOT has no capacity in some or all
zones (LOCAL_AWS_SPOT_CAPACITY) and every new task stops with a chosen stop code and reason
(LOCAL_AWS_TASK_FAILURE). Failed launches count for the deployment circuit breaker
(FAILED, rollback to the last completed deployment); while a deployment is in progress, each
DescribeServices is one more scheduler round (ECS keeps retrying on its own clock).
ECS events go to EventBridge (harness.engine_events): "ECS Task State Change" for every stopped
service task, "ECS Service Action" SERVICE_TASK_PLACEMENT_FAILURE once per deployment and
provider that cannot place a task; `interrupt_spot` stops a service's Spot tasks with stopCode
SpotInterruption, as a Spot reclaim does.

Call `install()` in the process that runs `moto.server.ThreadedMotoServer`, before any request.
Each patch below names the moto gap it closes. What moto 5.2.5 does without them:
  * CreateService drops capacityProviderStrategy, deploymentConfiguration,
    healthCheckGracePeriodSeconds, enableExecuteCommand and enableECSManagedTags, and reports
    launchType EC2 when no launch type is given;
  * no service ever starts a task, so runningCount is 0 (or MOTO_ECS_SERVICE_RUNNING) whatever
    the desired count, and UpdateService/DeleteService start or stop nothing;
  * ListTasks ignores serviceName and lists STOPPED tasks unless asked for RUNNING ones;
  * every DescribeTasks moves a RUNNING task one step towards STOPPED;
  * the AWS::ECS::Cluster CloudFormation model ignores every property but the name.
"""

from . import engine_ecs_scheduler as scheduler
from .engine_ecs_scheduler import FARGATE_PROVIDERS, circuit_breaker_threshold, interrupt_spot, split

# What callers use of the scheduler through this module (tests, the engine's control server).
__all__ = ["install", "FARGATE_PROVIDERS", "circuit_breaker_threshold", "interrupt_spot", "split"]

EXPECTED_MOTO_VERSION = "5.2.5"

_installed = False


def install() -> None:
    """Patch moto's ECS models and responses (once; later calls do nothing)."""
    global _installed
    import moto

    if moto.__version__ != EXPECTED_MOTO_VERSION:
        raise RuntimeError(
            f"engine_ecs patches moto {EXPECTED_MOTO_VERSION} internals, found moto "
            f"{moto.__version__}: re-check the patches against that version and update the pin"
        )
    with scheduler.lock:
        if _installed:
            return
        _patch_create_service()
        _patch_update_service()
        _patch_delete_service()
        _patch_stop_task()
        _patch_list_tasks()
        _patch_describe_services()
        _patch_task_lifecycle()
        _patch_cluster_cloudformation()
        _installed = True


# --- request validation (what ECS rejects and moto accepts) ---------------------------------------


def _invalid(message: str) -> Exception:
    from moto.ecs.exceptions import InvalidParameterException

    return InvalidParameterException(message)


def _normalized_strategy(items) -> list:
    """ECS echoes every item with its weight and base, 0 when not given."""
    return [
        {
            "capacityProvider": item["capacityProvider"],
            "weight": int(item.get("weight") or 0),
            "base": int(item.get("base") or 0),
        }
        for item in items
    ]


def _checked_strategy(items, cluster) -> list:
    strategy = _normalized_strategy(items)
    associated = cluster.capacity_providers or []
    for item in strategy:
        if item["capacityProvider"] not in associated:
            raise _invalid(
                "The specified capacity provider strategy cannot contain a capacity provider "
                f"that is not associated with the cluster ({item['capacityProvider']} is not "
                f"in {associated}). Associate the capacity provider with the cluster or "
                "specify a valid capacity provider and try again."
            )
    if sum(1 for item in strategy if item["base"] > 0) > 1:
        raise _invalid("Only one capacity provider in a strategy can have a base defined.")
    if len(strategy) > 1 and not any(item["weight"] > 0 for item in strategy):
        raise _invalid(
            "At least one capacity provider in a strategy of several must have a weight "
            "greater than 0."
        )
    return strategy


# --- patches --------------------------------------------------------------------------------------


def _patch_create_service() -> None:
    """moto's CreateService handler never passes capacityProviderStrategy (and a few more fields)
    to the backend, and its backend sets launchType EC2 when none is given. Wrap the handler: check
    the request as ECS does, keep what moto drops, then start the service's tasks."""
    from moto.core.utils import utcnow
    from moto.ecs.responses import EC2ContainerServiceResponse

    original = EC2ContainerServiceResponse.create_service
    dropped = {
        "deploymentConfiguration": "deployment_configuration",
        "healthCheckGracePeriodSeconds": "health_check_grace_period_seconds",
        "enableExecuteCommand": "enable_execute_command",
        "enableECSManagedTags": "enable_ecs_managed_tags",
    }

    def create_service(self):
        with scheduler.lock:
            backend = self.ecs_backend
            cluster = backend._get_cluster(self._get_param("cluster", "default"))
            strategy = self._get_param("capacityProviderStrategy")
            if strategy and self._get_param("launchType"):
                raise _invalid(
                    "Specifying both a launch type and capacity provider strategy is not "
                    "supported. Remove one and try again."
                )
            if not strategy and not self._get_param("launchType"):
                # ECS falls back to the cluster's default strategy and shows it on the service.
                strategy = cluster.default_capacity_provider_strategy
            if strategy:
                strategy = _checked_strategy(strategy, cluster)
            task_definition = self._get_param("taskDefinition")
            if task_definition and not self._get_param("networkConfiguration"):
                if backend.describe_task_definition(task_definition).network_mode == "awsvpc":
                    raise _invalid(
                        "Network Configuration must be provided when networkMode 'awsvpc' "
                        "is specified."
                    )
            result = original(self)
            service = result.result["service"]
            service.created_at = utcnow()
            for param, attribute in dropped.items():
                value = self._get_param(param)
                if value is not None:
                    setattr(service, attribute, value)
            if strategy:
                service.capacity_provider_strategy = strategy
                service.launch_type = None
                if service.deployments:
                    service.deployments[0]["launchType"] = None
            scheduler.schedule(backend, service, new_deployment=True)
            return result

    EC2ContainerServiceResponse.create_service = create_service


def _patch_update_service() -> None:
    """moto's UpdateService copies the request onto the service (the task definition as given, not
    as an ARN) and starts or stops nothing. Wrap it: check a new strategy, resolve the task
    definition, then reconcile the tasks; a new deployment (task definition, strategy, network,
    platform version or forceNewDeployment) replaces them all."""
    from moto.ecs.models import EC2ContainerServiceBackend

    original = EC2ContainerServiceBackend.update_service

    def update_service(self, service_properties):
        with scheduler.lock:
            cluster_str = service_properties.get("cluster", "default")
            cluster = self._get_cluster(cluster_str)
            service = self._get_service(cluster_str, service_properties["service"].split("/")[-1])
            strategy = service_properties.get("capacity_provider_strategy")
            if strategy is not None:
                # An empty list means "the cluster's default strategy" (ECS then shows that).
                strategy = strategy or cluster.default_capacity_provider_strategy or []
                if not strategy:
                    raise _invalid(
                        "The service has no capacity provider strategy and the cluster has "
                        "no default capacity provider strategy."
                    )
                strategy = _checked_strategy(strategy, cluster)
            td_str = service_properties.get("task_definition")
            force = bool(service_properties.get("force_new_deployment"))
            before = (
                service.task_definition,
                getattr(service, "capacity_provider_strategy", None),
                service.network_configuration,
                service.platform_version,
            )
            counts = (service.running_count, service.pending_count,
                      cluster.running_tasks_count, cluster.pending_tasks_count)
            deployments = service.deployments  # moto renames deployments[0] on a forced one
            service.deployments = [dict(d) for d in deployments]

            service = original(self, service_properties)

            if td_str:
                service.task_definition = self.describe_task_definition(td_str).arn
            if strategy is not None:
                service.capacity_provider_strategy = strategy
                service.launch_type = None
            if not scheduler.is_scheduled(service):
                return service
            # Undo moto's count and deployment bookkeeping; the scheduler books what actually runs.
            (service.running_count, service.pending_count,
             cluster.running_tasks_count, cluster.pending_tasks_count) = counts
            service.deployments = deployments
            after = (
                service.task_definition,
                getattr(service, "capacity_provider_strategy", None),
                service.network_configuration,
                service.platform_version,
            )
            scheduler.schedule(self, service, new_deployment=force or after != before)
            return service

    EC2ContainerServiceBackend.update_service = update_service


def _patch_delete_service() -> None:
    """moto's DeleteService marks the service INACTIVE but has no tasks to stop (and leaves its
    runningCount). Wrap it: stop every task of the service and report 0 desired and running."""
    from moto.ecs.models import EC2ContainerServiceBackend

    original = EC2ContainerServiceBackend.delete_service

    def delete_service(self, cluster_name, service_name, force):
        with scheduler.lock:
            service = original(self, cluster_name, service_name, force)
            tasks = scheduler.service_tasks(self, service)
            deployment_id = service.deployments[0]["id"] if service.deployments else "?"
            for task in tasks:
                scheduler.stop_task(task, f"Scaling activity initiated by (deployment {deployment_id})")
            if scheduler.is_scheduled(service) or tasks:
                service.desired_count = 0
                service.running_count = 0  # moto already took it off the cluster's counts
                for deployment in service.deployments:
                    deployment.update(desiredCount=0, runningCount=0, pendingCount=0)
            return service

    EC2ContainerServiceBackend.delete_service = delete_service


def _patch_stop_task() -> None:
    """ECS replaces a service task that stops (StopTask, a Spot interruption); moto's StopTask
    just stops it. Wrap it: after stopping a scheduled task, reconcile its service."""
    from moto.ecs.models import EC2ContainerServiceBackend

    original = EC2ContainerServiceBackend.stop_task

    def stop_task(self, cluster_str, task_str, reason):
        with scheduler.lock:
            task = original(self, cluster_str, task_str, reason)
            service_arn = getattr(task, "_engine_service_arn", None)
            if service_arn:
                scheduler.stop_task(task, reason or "Task stopped by user", code="UserInitiated")
                for service in self.services.values():
                    if service.arn == service_arn and service.status == "ACTIVE":
                        scheduler.schedule(self, service)
            return task

    EC2ContainerServiceBackend.stop_task = stop_task


def _patch_list_tasks() -> None:
    """moto's ListTasks ignores serviceName (a TODO there) and, given no desiredStatus, lists
    STOPPED tasks too; ECS filters by service and defaults desiredStatus to RUNNING."""
    from moto.ecs.models import EC2ContainerServiceBackend

    original = EC2ContainerServiceBackend.list_tasks

    def list_tasks(self, cluster_str=None, container_instance=None, family=None,
                   started_by=None, service_name=None, desiredStatus=None):
        with scheduler.lock:
            tasks = original(self, cluster_str, container_instance, family, started_by,
                             service_name, desiredStatus or "RUNNING")
            if service_name:
                service = self._get_service(cluster_str or "default", service_name.split("/")[-1])
                tasks = [task for task in tasks if task.group == f"service:{service.name}"]
            return tasks

    EC2ContainerServiceBackend.list_tasks = list_tasks


def _patch_describe_services() -> None:
    """ECS goes on launching an in-progress deployment's missing tasks (and fails it, or rolls it
    back) on its own clock; moto has none. Each DescribeServices of such a service runs one
    scheduler round before the answer is built, so a poller sees the deployment move on."""
    from moto.ecs.models import EC2ContainerServiceBackend

    original = EC2ContainerServiceBackend.describe_services

    def describe_services(self, cluster_str, service_names_or_arns):
        with scheduler.lock:
            services, failures = original(self, cluster_str, service_names_or_arns)
            for service in services:
                if scheduler.in_progress(service):
                    scheduler.reconcile(self, service)
            return services, failures

    EC2ContainerServiceBackend.describe_services = describe_services


def _patch_task_lifecycle() -> None:
    """moto moves every described task one state towards STOPPED (RUNNING -> DEACTIVATING -> ...)
    so that tasks-stopped waiters finish. A service's task runs until the scheduler stops it, so
    hold the scheduler's tasks still while ECS wants them RUNNING."""
    from moto.ecs.models import Task

    original = Task.advance

    def advance(self):
        if getattr(self, "_engine_service_arn", None) and self.desired_status == "RUNNING":
            return
        original(self)

    Task.advance = advance


def _cfn_strategy(items):
    if items is None:
        return None
    return _normalized_strategy(
        {"capacityProvider": item["CapacityProvider"], "weight": item.get("Weight"),
         "base": item.get("Base")}
        for item in items
    )


def _cfn_cluster_args(properties) -> dict:
    settings = properties.get("ClusterSettings")
    tags = properties.get("Tags")
    return {
        "cluster_settings": (
            [{"name": s["Name"], "value": s["Value"]} for s in settings] if settings else None
        ),
        "capacity_providers": properties.get("CapacityProviders"),
        "default_capacity_provider_strategy": _cfn_strategy(
            properties.get("DefaultCapacityProviderStrategy")
        ),
        "tags": [{"key": t["Key"], "value": t["Value"]} for t in tags] if tags else None,
    }


def _patch_cluster_cloudformation() -> None:
    """moto's AWS::ECS::Cluster model creates the cluster from its name only, dropping
    CapacityProviders, DefaultCapacityProviderStrategy, ClusterSettings and Tags, and an update
    that keeps the name changes nothing. Replace both: pass them to create_cluster, apply them in
    place on update."""
    from moto.ecs.models import Cluster, ecs_backends

    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id,
                                        region_name, **kwargs):
        properties = cloudformation_json.get("Properties") or {}
        return ecs_backends[account_id][region_name].create_cluster(
            cluster_name=resource_name, **_cfn_cluster_args(properties)
        )

    def update_from_cloudformation_json(cls, original_resource, new_resource_name,
                                        cloudformation_json, account_id, region_name):
        backend = ecs_backends[account_id][region_name]
        properties = cloudformation_json.get("Properties") or {}
        args = _cfn_cluster_args(properties)
        if original_resource.name != new_resource_name:
            backend.delete_cluster(original_resource.arn)
            return backend.create_cluster(cluster_name=new_resource_name, **args)
        cluster = original_resource
        cluster.capacity_providers = args["capacity_providers"]
        cluster.default_capacity_provider_strategy = args["default_capacity_provider_strategy"]
        if args["cluster_settings"]:
            cluster.settings = args["cluster_settings"]
        cluster.tags = args["tags"]
        return cluster

    Cluster.create_from_cloudformation_json = classmethod(create_from_cloudformation_json)
    Cluster.update_from_cloudformation_json = classmethod(update_from_cloudformation_json)
