"""The ECS service scheduler of the local engine (harness/engine_ecs.py patches it into moto):
tasks placed per capacity provider by base and weight, launched as Fargate launches them (a subnet
in a zone with Fargate and, for FARGATE_SPOT, Spot capacity; the image pulled), stopped with their
ENIs, replaced by a new deployment, failed up to the circuit breaker; and the ECS events it sends
to EventBridge (harness/engine_events.py). With LOCAL_ENGINE_TASK_BINARY set, each launched task
also runs as a process behind its load balancer (harness/task_processes.py). Every entry point
holds `lock`."""
import math
import re
import threading

from . import aws_rules, engine_events, task_processes

FARGATE_PROVIDERS = ("FARGATE", "FARGATE_SPOT")
lock = threading.RLock()


# --- placement ------------------------------------------------------------------------------------


def split(strategy, count: int) -> dict:
    """Tasks per capacity provider for `count` tasks, as ECS places them: the provider with a
    base gets up to `base` tasks first, the rest go by weight (weight 0 gets none after its base).
    Each further task goes to the provider furthest below its weighted share (ties: strategy
    order), so n+1 tasks are n tasks plus one and the split of n is as even as integers allow.
    A launch-type service (no strategy) has one pseudo-provider, None."""
    if not strategy:
        return {None: count}
    counts = {item["capacityProvider"]: 0 for item in strategy}
    based = next((item for item in strategy if item["base"] > 0), None)
    if based:
        counts[based["capacityProvider"]] = min(based["base"], count)
    rest = count - sum(counts.values())
    weighted = [item for item in strategy if item["weight"] > 0] or [dict(strategy[0], weight=1)]
    total = sum(item["weight"] for item in weighted)
    by_weight = {item["capacityProvider"]: 0 for item in weighted}
    for placed in range(1, rest + 1):
        # deficit = weight*placed/total - assigned, compared in integers (times total)
        chosen = max(
            weighted,
            key=lambda item: item["weight"] * placed - by_weight[item["capacityProvider"]] * total,
        )
        by_weight[chosen["capacityProvider"]] += 1
    for provider, placed in by_weight.items():
        counts[provider] += placed
    return counts


def is_scheduled(service) -> bool:
    """The services this scheduler runs: ECS-controlled replica services on Fargate."""
    if service.deployment_controller.get("type", "ECS") != "ECS":
        return False
    if service.scheduling_strategy not in (None, "REPLICA"):
        return False
    strategy = getattr(service, "capacity_provider_strategy", None)
    if strategy:
        return all(item["capacityProvider"] in FARGATE_PROVIDERS for item in strategy)
    return service.launch_type == "FARGATE"


def service_tasks(backend, service) -> list:
    """The service's tasks that ECS still wants running, oldest first."""
    tasks = backend.tasks.get(service.cluster_name, {}).values()
    ours = [
        task
        for task in tasks
        if getattr(task, "_engine_service_arn", None) == service.arn
        and task.desired_status == "RUNNING"
    ]
    return sorted(ours, key=lambda task: task.created_at)


class _TaskDefinitionWithoutEni:
    """moto's Task() creates an awsvpc task's ENI itself and reads `eni.private_dns_name`, which
    moto only sets when the VPC has DNS hostnames enabled (otherwise: AttributeError, HTTP 500).
    Task() gets this view (networkMode not awsvpc) and `_attach_eni` attaches the ENI instead."""

    network_mode = None

    def __init__(self, task_definition):
        self._task_definition = task_definition

    def __getattr__(self, name):
        return getattr(self._task_definition, name)


def _attach_eni(task, service, subnet_id: str) -> None:
    from moto.ec2 import ec2_backends
    from moto.moto_api._internal import mock_random

    awsvpc = (service.network_configuration or {}).get("awsvpcConfiguration") or {}
    ec2 = ec2_backends[task._account_id][task.region_name]
    attachment_id = str(mock_random.uuid4())
    eni = ec2.create_network_interface(
        subnet=subnet_id,
        private_ip_address=None,
        group_ids=awsvpc.get("securityGroups") or [],
        description=f"arn:aws:ecs:{task.region_name}:{task._account_id}:attachment/{attachment_id}",
    )
    eni.status = "in-use"
    eni.device_index = 0
    details = [
        {"name": "subnetId", "value": eni.subnet.id},
        {"name": "networkInterfaceId", "value": eni.id},
        {"name": "macAddress", "value": eni.mac_address},
        {"name": "privateIPv4Address", "value": eni.private_ip_address},
    ]
    if getattr(eni, "private_dns_name", None):
        details.append({"name": "privateDnsName", "value": eni.private_dns_name})
    task.network_configuration = service.network_configuration
    task.attachments = [
        {"id": attachment_id, "type": "ElasticNetworkInterface", "status": "ATTACHED",
         "details": details}
    ]
    task.availability_zone = eni.subnet.availability_zone
    task._engine_eni_id = eni.id


def _start_task(backend, cluster, service, task_definition, provider, deployment_id, subnet_id):
    from moto.core.utils import utcnow
    from moto.ecs.models import Task

    if service.propagate_tags == "SERVICE":
        tags = list(service.tags)
    elif service.propagate_tags == "TASK_DEFINITION":
        tags = list(task_definition.tags or [])
    else:
        tags = []
    task = Task(
        cluster=cluster,
        task_definition=_TaskDefinitionWithoutEni(task_definition),
        container_instance_arn=None,
        resource_requirements=None,  # only used to book EC2 container-instance capacity
        backend=backend,
        group=f"service:{service.name}",
        launch_type="FARGATE",
        started_by=deployment_id,
        tags=tags,
        platform_version="1.4.0",  # what Fargate resolves LATEST to
        capacity_provider_name=provider,
    )
    now = utcnow()
    task.created_at = task.started_at = task.connectivity_at = now
    task.connectivity = "CONNECTED"
    task.cpu, task.memory = task_definition.cpu, task_definition.memory
    task.platform_family = "Linux"
    task.enable_execute_command = bool(getattr(service, "enable_execute_command", False))
    for container in task.containers:
        container.last_status = "RUNNING"
    task._engine_service_arn = service.arn
    task._engine_deployment_id = deployment_id
    if subnet_id:
        _attach_eni(task, service, subnet_id)
    backend.tasks.setdefault(cluster.name, {})[task.task_arn] = task
    return task


# --- what keeps a task from starting --------------------------------------------------------------

ECR_IMAGE = re.compile(
    r"^(?P<account>\d{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?/"
    r"(?P<repository>[^:@]+)(?::(?P<tag>[^@]+))?(?:@(?P<digest>sha256:[0-9a-f]{64}))?$"
)
# No AWS text is documented for a zone without Fargate; this is Fargate's documented answer when
# it has no capacity ("How do I troubleshoot ... Capacity is unavailable", AWS re:Post).
NO_FARGATE_CAPACITY = ("Capacity is unavailable at this time. Please try again later or in a "
                       "different availability zone")


def _pull_failure(task_definition, account_id: str):
    """Why Fargate cannot pull the task's images (CannotPullContainerError, as the task's
    stoppedReason reads), or None. Only this account's ECR is checked, since moto holds it; images
    anywhere else (public.ecr.aws, Docker Hub, other accounts) are assumed pullable."""
    from moto.ecr.models import ecr_backends

    if not aws_rules.enforced("ECR_PULL"):
        return None
    for container in task_definition.container_definitions:
        image = container.get("image") or ""
        found = ECR_IMAGE.match(image)
        if not found or found["account"] != account_id:
            continue
        repository = ecr_backends[account_id][found["region"]].repositories.get(
            found["repository"])
        images = repository.images if repository else []
        if found["digest"]:
            present = any(i.get_image_digest() == found["digest"] for i in images)
        else:
            present = any((found["tag"] or "latest") in i.image_tags for i in images)
        if not present:
            ref = image if found["tag"] or found["digest"] else f"{image}:latest"
            return ("CannotPullContainerError: pull image manifest has been retried 1 time(s): "
                    f"failed to resolve ref {ref}: not found")
    return None


def _knob_failure():
    """LOCAL_AWS_TASK_FAILURE=<stopCode>|<stoppedReason>[|<exit code>]: every task launched while it
    is set stops at once that way, as ECS reports a task that could not start or whose essential
    container exited (e.g. "TaskFailedToStart|ResourceInitializationError: unable to pull secrets
    ..." or "EssentialContainerExited|Essential container in task exited|1"). Empty: none."""
    value = aws_rules.knob("TASK_FAILURE", "")
    if not value:
        return None
    code, _, rest = value.partition("|")
    reason, _, exit_code = rest.partition("|")
    return code.strip(), reason.strip() or code.strip(), int(exit_code) if exit_code.strip() else None


def _spot_short_zones():
    """LOCAL_AWS_SPOT_CAPACITY: "available" (default), "unavailable" (no FARGATE_SPOT capacity in
    any zone) or the comma-separated zone names without it. A Spot task is placed only in a zone
    with Spot capacity; ECS does not move it to FARGATE (containers-roadmap #852)."""
    value = aws_rules.knob("SPOT_CAPACITY", "available")
    if value.lower() == "available":
        return frozenset()
    if value.lower() == "unavailable":
        return None  # every zone
    return frozenset(zone.strip() for zone in value.split(",") if zone.strip())


def _placeable(subnets, provider: str, service) -> list:
    """The subnets a task of `provider` can be placed in now (Spot capacity, see above)."""
    from moto.ec2 import ec2_backends

    if provider != "FARGATE_SPOT":
        return subnets
    short = _spot_short_zones()
    if short is None:
        return []
    if not short:
        return subnets
    ec2 = ec2_backends[service._account_id][service.region_name]
    return [s for s in subnets if ec2.get_subnet(s).availability_zone not in short]


def _fargate_subnets(task_definition, service) -> list:
    """The service's subnets in zones where Fargate runs this operating system family (ECS places
    a Fargate task in one of the subnets it is given, by Availability Zone capacity)."""
    from moto.ec2 import ec2_backends

    awsvpc = (service.network_configuration or {}).get("awsvpcConfiguration") or {}
    subnets = awsvpc.get("subnets") or []
    if not aws_rules.enforced("FARGATE_ZONES"):
        return subnets
    family = (task_definition.runtime_platform or {}).get("operatingSystemFamily") or "LINUX"
    unsupported = aws_rules.FARGATE_UNSUPPORTED_ZONE_IDS[
        "WINDOWS" if family.startswith("WINDOWS") else "LINUX"]
    ec2 = ec2_backends[service._account_id][service.region_name]
    return [s for s in subnets if ec2.get_subnet(s).availability_zone_id not in unsupported]


def _launch(backend, cluster, service, task_definition, provider, deployment_id, index):
    """One task launch as Fargate does it: a subnet in a zone that offers Fargate (spread over the
    service's subnets, so over its zones), then the image pull. Returns (task, failure): no task
    when none can be placed, a STOPPED one when its image cannot be pulled."""
    subnet_id = None
    awsvpc = (service.network_configuration or {}).get("awsvpcConfiguration") or {}
    if task_definition.network_mode == "awsvpc" and awsvpc.get("subnets"):
        subnets = _placeable(_fargate_subnets(task_definition, service), provider, service)
        if not subnets:
            return None, NO_FARGATE_CAPACITY
        subnet_id = subnets[index % len(subnets)]
    elif provider == "FARGATE_SPOT" and _spot_short_zones() is None:
        return None, NO_FARGATE_CAPACITY
    task = _start_task(backend, cluster, service, task_definition, provider, deployment_id,
                       subnet_id)
    failure = _pull_failure(task_definition, task._account_id)
    if failure:
        stop_task(task, failure, code="TaskFailedToStart")
        return task, failure
    forced = _knob_failure()
    if forced:
        code, reason, exit_code = forced
        if exit_code is not None:
            for container in task.containers:
                container.exitCode = exit_code
        stop_task(task, reason, code=code)
        return task, reason
    failure = task_processes.launched(task, service, task_definition)  # the process, if opted in
    if failure:
        stop_task(task, failure, code="TaskFailedToStart")
        return task, failure
    return task, None


def stop_task(task, reason: str, code: str = "ServiceSchedulerInitiated") -> None:
    from moto.core.utils import utcnow
    from moto.ec2 import ec2_backends

    now = utcnow()
    task.desired_status = "STOPPED"
    task.last_status = "STOPPED"
    task.stopped_reason = reason
    task.stop_code = code
    task.stopping_at = task.execution_stopped_at = task.stopped_at = now
    for container in task.containers:
        container.last_status = "STOPPED"
    for attachment in task.attachments:
        attachment["status"] = "DELETED"
    # ECS deletes a stopped task's ENI; moto's StopTask leaves it behind.
    eni_id = getattr(task, "_engine_eni_id", None)
    if eni_id:
        ec2_backends[task._account_id][task.region_name].enis.pop(eni_id, None)
        task._engine_eni_id = None
    if getattr(task, "_engine_service_arn", None):
        _task_stopped_event(task)
    task_processes.stopped(task)  # drains and stops its process, if it has one


def _task_stopped_event(task) -> None:
    """ECS Task State Change as ECS sends it when a task stops (ECS Developer Guide, "Amazon ECS
    task state change events")."""
    cluster_arn = task.cluster_arn if hasattr(task, "cluster_arn") else ""
    engine_events.emit(task._account_id, task.region_name, "aws.ecs", "ECS Task State Change", {
        "clusterArn": cluster_arn, "taskArn": task.task_arn, "group": task.group,
        "startedBy": task.started_by, "capacityProviderName": task.capacity_provider_name,
        "launchType": "FARGATE", "lastStatus": "STOPPED", "desiredStatus": "STOPPED",
        "stopCode": task.stop_code, "stoppedReason": task.stopped_reason,
    }, [task.task_arn])


def _placement_failure_event(service, deployment_id: str, provider: str) -> None:
    """ECS Service Action SERVICE_TASK_PLACEMENT_FAILURE ("Amazon ECS service action events"),
    once per deployment and provider (ECS does not repeat it for every retry)."""
    sent = service.__dict__.setdefault("_engine_placement_events", set())
    if (deployment_id, provider) in sent:
        return
    sent.add((deployment_id, provider))
    region, account = service.region_name, service._account_id
    cluster_arn = f"arn:aws:ecs:{region}:{account}:cluster/{service.cluster_name}"
    engine_events.emit(account, region, "aws.ecs", "ECS Service Action", {
        "eventType": "ERROR", "eventName": "SERVICE_TASK_PLACEMENT_FAILURE", "clusterArn": cluster_arn,
        "capacityProviderArns": [f"arn:aws:ecs:{region}:{account}:capacity-provider/{provider}"],
        "reason": "RESOURCE:FARGATE",
    }, [service.arn])


SPOT_INTERRUPTED = "Your Spot Task was interrupted."


def interrupt_spot(backend, cluster_name: str, service_name: str) -> list:
    """A Spot reclaim: the service's running FARGATE_SPOT tasks stop with stopCode
    SpotInterruption, then ECS tries to replace them (on Spot, as the strategy says). Returns the
    stopped task ids."""
    with lock:
        service = next(s for s in backend.services.values()
                       if s.cluster_name == cluster_name and s.name == service_name and s.status == "ACTIVE")
        stopped = []
        for task in service_tasks(backend, service):
            if task.capacity_provider_name == "FARGATE_SPOT":
                stop_task(task, SPOT_INTERRUPTED, code="SpotInterruption")
                stopped.append(task.id)
        service._engine_replacing = True
        schedule(backend, service)
        return stopped


def _set_counts(backend, service, running: int) -> None:
    """runningCount/pendingCount as ECS reports them once the tasks run, and the cluster's
    running/pending task counts moved by the same amounts (moto books them per service)."""
    cluster = backend.clusters.get(service.cluster_name)
    if cluster is not None:
        cluster.running_tasks_count += running - service.running_count
        cluster.pending_tasks_count -= service.pending_count
    service.running_count = running
    service.pending_count = 0


def _event(service, message: str) -> None:
    from moto.core.utils import utcnow
    from moto.moto_api._internal import mock_random

    service.events.insert(
        0, {"id": str(mock_random.uuid4()), "createdAt": utcnow(), "message": message}
    )
    del service.events[100:]


def circuit_breaker_threshold(desired: int) -> int:
    """Failed tasks that fail a deployment: "a minimum threshold of 3 and a maximum threshold of
    200 ... 0.5 * desired task count" (ServiceDeploymentCircuitBreaker, ECS API reference), half
    rounded up as the Developer Guide's table does."""
    return min(200, max(3, math.ceil(desired / 2)))


def _deployment_id() -> str:
    from moto.moto_api._internal import mock_random

    return f"ecs-svc/{mock_random.randint(0, 32**12)}"


def _begin_deployment(service) -> None:
    """A new PRIMARY deployment of the service as it now is; earlier ones stay ACTIVE (their tasks
    keep running) until it has all its tasks, as a rolling update with minimumHealthyPercent 100."""
    from moto.core.utils import utcnow

    previous = service.deployments[0] if service.deployments else {}
    deployment_id = _deployment_id()
    now = utcnow()
    deployment = dict(previous)  # the first one keeps what moto's CreateService wrote
    deployment.update(
        {
            "id": deployment_id,
            "status": "PRIMARY",
            "taskDefinition": service.task_definition,
            "desiredCount": 0,
            "pendingCount": 0,
            "runningCount": 0,
            "failedTasks": 0,
            "capacityProviderStrategy": getattr(service, "capacity_provider_strategy", None)
            or None,
            "launchType": service.launch_type or None,
            "platformVersion": service.platform_version,
            "platformFamily": "Linux",  # moto wrote "EC2" when it took the service for EC2
            "networkConfiguration": service.network_configuration or None,
            "rolloutState": "IN_PROGRESS",
            "rolloutStateReason": f"ECS deployment {deployment_id} in progress.",
            "createdAt": now,
            "updatedAt": now,
        }
    )
    older = service.deployments if getattr(service, "_engine_scheduled", False) else []
    for other in older:
        other["status"] = "ACTIVE"
    service.deployments = [deployment] + older
    service._engine_scheduled = True


def _fail_deployment(backend, service, deployment, rollback: bool) -> None:
    """The circuit breaker's verdict, in ECS's words; with rollback, a new PRIMARY deployment of the
    last completed one takes over its running tasks."""
    from moto.core.utils import utcnow

    deployment["rolloutState"] = "FAILED"
    deployment["rolloutStateReason"] = "ECS deployment circuit breaker: tasks failed to start."
    _event(service, f"(service {service.name}) (deployment {deployment['id']}) deployment "
                    "failed: tasks failed to start.")
    last_good = next(
        (d for d in service.deployments[1:] if d["rolloutState"] == "COMPLETED"), None)
    if not rollback or last_good is None:
        return
    now = utcnow()
    back = dict(last_good, id=_deployment_id(), status="PRIMARY", rolloutState="IN_PROGRESS",
                rolloutStateReason="ECS deployment circuit breaker: rolling back to deploymentId "
                                   f"{last_good['id']}.",
                failedTasks=0, createdAt=now, updatedAt=now)
    for task in service_tasks(backend, service):
        if task._engine_deployment_id == last_good["id"]:
            task._engine_deployment_id = back["id"]
    deployment["status"] = "ACTIVE"
    service.deployments = [back] + [d for d in service.deployments if d is not last_good]
    service.task_definition = last_good["taskDefinition"]
    service.capacity_provider_strategy = last_good["capacityProviderStrategy"]
    _event(service, f"(service {service.name}) rolling back to deployment {last_good['id']}.")


def reconcile(backend, service) -> None:
    """One scheduler round for the PRIMARY deployment: surplus tasks stop (newest first, per
    provider, so the rest match the strategy's split), missing ones are launched unless the
    deployment FAILED. Once it runs all its tasks, older deployments stop theirs and go, and the
    rollout is COMPLETED; while it runs none, failed launches count towards the circuit breaker."""
    from moto.core.utils import utcnow

    cluster = backend.clusters[service.cluster_name]
    primary = service.deployments[0]
    task_definition = backend.describe_task_definition(primary["taskDefinition"])
    strategy = primary["capacityProviderStrategy"]
    desired = (service.desired_count or 0) if service.status == "ACTIVE" else 0

    target = split(strategy, desired)
    tasks = service_tasks(backend, service)
    kept = {provider: [] for provider in target}
    for task in tasks:
        if task._engine_deployment_id != primary["id"]:
            continue
        provider = task.capacity_provider_name
        if provider in kept and len(kept[provider]) < target[provider]:
            kept[provider].append(task)
        else:
            stop_task(task, f"Scaling activity initiated by (deployment {primary['id']})")
    started, unplaced = [], []
    placed = sum(len(group) for group in kept.values())
    if primary["rolloutState"] != "FAILED":
        for provider, count in target.items():
            for _ in range(count - len(kept[provider])):
                task, failure = _launch(backend, cluster, service, task_definition, provider,
                                        primary["id"], placed + len(started))
                if failure:
                    primary["failedTasks"] += 1
                if task is None:
                    unplaced.append(failure)
                    _placement_failure_event(service, primary["id"], provider)
                    continue
                started.append(task)
                if not failure:
                    kept[provider].append(task)
    running = sum(len(group) for group in kept.values())

    service.platform_family = "Linux"
    primary.update(desiredCount=desired, runningCount=running, updatedAt=utcnow())
    if started:
        ids = " ".join(f"(task {task.id})" for task in started)
        _event(service, f"(service {service.name}) has started {len(started)} tasks: {ids}.")
    if unplaced:
        _event(service, f"(service {service.name}) was unable to place a task. Reason: "
                        f"{unplaced[0]}.")
    if running == desired and primary["rolloutState"] != "FAILED":
        for task in service_tasks(backend, service):
            if task._engine_deployment_id != primary["id"]:
                stop_task(task, f"Scaling activity initiated by (deployment "
                                 f"{task._engine_deployment_id})")
        service.deployments = [primary]
        primary["rolloutState"] = "COMPLETED"
        primary["rolloutStateReason"] = f"ECS deployment {primary['id']} completed."
    breaker = (getattr(service, "deployment_configuration", None) or {}).get(
        "deploymentCircuitBreaker") or {}
    if (breaker.get("enable") and primary["rolloutState"] == "IN_PROGRESS" and running == 0
            and primary["failedTasks"] >= circuit_breaker_threshold(desired)):
        _fail_deployment(backend, service, primary, bool(breaker.get("rollback")))
    for deployment in service.deployments[1:]:
        deployment["runningCount"] = sum(
            1 for task in service_tasks(backend, service)
            if task._engine_deployment_id == deployment["id"])
    _set_counts(backend, service, len(service_tasks(backend, service)))
    if running == desired:
        service._engine_replacing = False
    if service.status == "ACTIVE" and service.deployments[0]["rolloutState"] == "COMPLETED":
        _event(service, f"(service {service.name}) has reached a steady state.")


def in_progress(service) -> bool:
    """A deployment in progress, or a steady service replacing stopped tasks it could not place."""
    return (is_scheduled(service) and service.status == "ACTIVE" and bool(service.deployments)
            and (service.deployments[0].get("rolloutState") == "IN_PROGRESS"
                 or getattr(service, "_engine_replacing", False)))


def schedule(backend, service, new_deployment: bool = False) -> None:
    """Reconcile the service's tasks with its desired count and strategy (a new deployment, or the
    service's first, replaces every task). With launchable tasks the service is steady at once:
    one PRIMARY deployment, rollout COMPLETED, runningCount == desiredCount. Otherwise each
    DescribeServices is a further round (see _patch_describe_services)."""
    if not is_scheduled(service) or not service.task_definition:
        return
    if new_deployment or not getattr(service, "_engine_scheduled", False):
        _begin_deployment(service)
    reconcile(backend, service)
