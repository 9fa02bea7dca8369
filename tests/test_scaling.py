"""Custom::ServiceScaling through the real `scaling` binary against moto's Application Auto
Scaling and CloudWatch (aws-sdk-cloudwatch pinned to 1.99, the protocol moto speaks)."""
import pytest

from harness.cloudformation import Resource


# The clients the tests (and tests/bench_paths.py) make the world with and look at it through.
CLIENTS = ("ec2", "ecs", "elbv2", "iam", "application-autoscaling", "cloudwatch")


@pytest.fixture
def aws(moto):
    return {name: moto.client(name) for name in CLIENTS}


@pytest.fixture
def world(aws):
    return make_world(aws)


def make_world(aws) -> dict:
    """An ECS service `web` in cluster `app` running 1 task, and an ALB with an ip target group."""
    ec2, ecs, elb = aws["ec2"], aws["ecs"], aws["elbv2"]
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24", AvailabilityZone=f"us-east-1{z}")["Subnet"]["SubnetId"]
               for i, z in ((1, "a"), (2, "b"))]
    group = ec2.create_security_group(GroupName="app", Description="app", VpcId=vpc)["GroupId"]
    # An account that has run ECS before: the cluster's capacity providers need this role.
    aws["iam"].create_service_linked_role(AWSServiceName="ecs.amazonaws.com")
    ecs.create_cluster(clusterName="app", capacityProviders=["FARGATE", "FARGATE_SPOT"])
    ecs.register_task_definition(family="web", networkMode="awsvpc", requiresCompatibilities=["FARGATE"], cpu="256", memory="512",
                                 containerDefinitions=[{"name": "web", "image": "nginx", "memory": 512}])
    ecs.create_service(cluster="app", serviceName="web", taskDefinition="web:1", desiredCount=1,
                       networkConfiguration={"awsvpcConfiguration": {"subnets": subnets, "securityGroups": [group]}})
    balancer = elb.create_load_balancer(Name="web-alb", Subnets=subnets, SecurityGroups=[group], Type="application")["LoadBalancers"][0]
    target = elb.create_target_group(Name="web", Protocol="HTTP", Port=80, VpcId=vpc, TargetType="ip")["TargetGroups"][0]
    elb.create_listener(LoadBalancerArn=balancer["LoadBalancerArn"], Protocol="HTTP", Port=80,
                        DefaultActions=[{"Type": "forward", "TargetGroupArn": target["TargetGroupArn"]}])
    return {"balancer": balancer["LoadBalancerArn"], "target_group": target["TargetGroupArn"]}


@pytest.fixture
def scaling(cfn, scaling_function):
    return Resource(cfn, scaling_function, "Scaling", resource_type="Custom::ServiceScaling")


BASE = {"Cluster": "app", "ServiceName": "web", "MinCapacity": 1, "MaxCapacity": 4}


def state(aws):
    aas, cw = aws["application-autoscaling"], aws["cloudwatch"]
    targets = aas.describe_scalable_targets(ServiceNamespace="ecs")["ScalableTargets"]
    policies = {p["PolicyName"]: p for p in aas.describe_scaling_policies(ServiceNamespace="ecs")["ScalingPolicies"]}
    alarms = {a["AlarmName"]: a for a in cw.describe_alarms()["MetricAlarms"]}
    return targets, policies, alarms


def test_create_makes_the_target_two_step_policies_with_correct_bounds_and_their_alarms(scaling, world, aws):
    answer = scaling.create(dict(BASE, ScaleOutAdjustment=2))
    assert answer.ok, answer.reason
    assert answer.physical_id == "service/app/web"
    targets, policies, alarms = state(aws)
    assert [(t["ResourceId"], t["ScalableDimension"], t["MinCapacity"], t["MaxCapacity"]) for t in targets] == \
        [("service/app/web", "ecs:service:DesiredCount", 1, 4)]
    out = policies["app-web-cpu-scale-out"]["StepScalingPolicyConfiguration"]
    assert out["AdjustmentType"] == "ChangeInCapacity" and out["Cooldown"] == 300
    assert out["StepAdjustments"] == [{"MetricIntervalLowerBound": 0.0, "ScalingAdjustment": 2}]
    inward = policies["app-web-cpu-scale-in"]["StepScalingPolicyConfiguration"]
    assert inward["StepAdjustments"] == [{"MetricIntervalUpperBound": 0.0, "ScalingAdjustment": -1}]
    high, low = alarms["app-web-cpu-high"], alarms["app-web-cpu-low"]
    assert (high["Threshold"], high["ComparisonOperator"]) == (75.0, "GreaterThanOrEqualToThreshold")
    assert (low["Threshold"], low["ComparisonOperator"]) == (25.0, "LessThanThreshold")
    assert high["AlarmActions"] == [answer.data["ScaleOutPolicyArn"]]
    assert low["AlarmActions"] == [answer.data["ScaleInPolicyArn"]]
    assert {d["Name"]: d["Value"] for d in high["Dimensions"]} == {"ClusterName": "app", "ServiceName": "web"}
    assert (high["MetricName"], high["Namespace"], high["Period"], high["EvaluationPeriods"]) == ("CPUUtilization", "AWS/ECS", 300, 1)
    assert answer.data["ScaleOutAlarmName"] == "app-web-cpu-high" and answer.data["TargetTrackingPolicyArns"] == ""
    scaling.delete()


def test_an_update_of_thresholds_and_limits_applies_in_place_and_keeps_the_desired_count_in_range(scaling, world, aws):
    scaling.create(BASE)
    answer = scaling.update(dict(BASE, MinCapacity=2, MaxCapacity=6, ScaleOutCpuThreshold=60, ScaleInCpuThreshold="20",
                                 PeriodSeconds=60, EvaluationPeriods=3))
    assert answer.ok and answer.physical_id == "service/app/web"
    targets, _, alarms = state(aws)
    assert (targets[0]["MinCapacity"], targets[0]["MaxCapacity"]) == (2, 6)
    assert alarms["app-web-cpu-high"]["Threshold"] == 60.0 and alarms["app-web-cpu-low"]["Threshold"] == 20.0
    assert (alarms["app-web-cpu-high"]["Period"], alarms["app-web-cpu-high"]["EvaluationPeriods"]) == (60, 3)
    service = aws["ecs"].describe_services(cluster="app", services=["web"])["services"][0]
    assert service["desiredCount"] == 2, "raised into the new minimum"
    scaling.delete()


def test_delete_leaves_no_target_policy_or_alarm_and_is_idempotent(scaling, world, aws):
    scaling.create(dict(BASE, TargetTracking=[{"Metric": "CPUUtilization", "TargetValue": 50}]))
    assert scaling.delete().ok
    assert state(aws) == ([], {}, {})
    assert scaling.delete().ok


def test_target_tracking_policies_are_added_and_removed_by_diff_with_the_alb_resource_label(scaling, world, aws):
    answer = scaling.create(dict(BASE, TargetTracking=[
        {"Metric": "CPUUtilization", "TargetValue": "50"},
        {"Metric": "ALBRequestCountPerTarget", "TargetValue": 1000, "TargetGroupArn": world["target_group"], "DisableScaleIn": "true"},
    ]))
    assert answer.ok, answer.reason
    assert len(answer.data["TargetTrackingPolicyArns"].split(",")) == 2
    _, policies, _ = state(aws)
    alb = policies["app-web-target-alb-requests"]["TargetTrackingScalingPolicyConfiguration"]
    lb_suffix = world["balancer"].split(":loadbalancer/")[1]
    tg_suffix = world["target_group"].rsplit(":", 1)[1]
    assert alb["PredefinedMetricSpecification"] == {"PredefinedMetricType": "ALBRequestCountPerTarget",
                                                    "ResourceLabel": f"{lb_suffix}/{tg_suffix}"}
    assert alb["TargetValue"] == 1000.0 and alb["DisableScaleIn"] is True

    answer = scaling.update(dict(BASE, TargetTracking=[{"Metric": "MemoryUtilization", "TargetValue": 70}]))
    assert answer.ok
    _, policies, _ = state(aws)
    assert sorted(policies) == ["app-web-cpu-scale-in", "app-web-cpu-scale-out", "app-web-target-memory"]
    scaling.delete()
    assert state(aws) == ([], {}, {})


BAD = [
    ({"MinCapacity": 5, "MaxCapacity": 2}, "MinCapacity"),
    ({"ScaleOutCpuThreshold": 30, "ScaleInCpuThreshold": 30}, "ScaleOutCpuThreshold"),
    ({"ScaleOutAdjustment": 0}, "ScaleOutAdjustment"),
    ({"TargetTracking": [{"Metric": "ALBRequestCountPerTarget", "TargetValue": 100}]}, "TargetTracking[0].TargetGroupArn"),
    ({"PeriodSeconds": 90}, "PeriodSeconds"),
    ({"MaxCapacty": 3}, "MaxCapacty"),
]


@pytest.mark.parametrize("extra,named", BAD, ids=[f"{b[1]}-{i}" for i, b in enumerate(BAD)])
def test_bad_input_fails_naming_the_property_and_creates_nothing(scaling, world, aws, extra, named):
    answer = scaling.create(dict(BASE, **extra))
    assert answer.status == "FAILED"
    assert f"invalid property {named}" in answer.reason, answer.reason
    assert state(aws) == ([], {}, {})
