"""What the emulator holds, service by service: used to prove a deleted stack left nothing behind.

Account-level defaults that exist before any stack (the default VPC and its subnets, route table,
internet gateway and security group; AWS-managed IAM policies) are not counted; the ECS
service-linked role is reported separately because AWS keeps it after stacks are deleted too.
"""
from typing import Callable


def inventory(client: Callable) -> dict:
    """{kind: [ids]} of everything a stack of ours can create. `client(service)` gives a boto3 client."""
    ec2, ecs, elbv2 = client("ec2"), client("ecs"), client("elbv2")
    default_vpcs = {v["VpcId"] for v in ec2.describe_vpcs()["Vpcs"] if v.get("IsDefault")}

    def own(items, key):
        return [i[key] for i in items if i.get("VpcId") not in default_vpcs]

    found = {
        "vpcs": own(ec2.describe_vpcs()["Vpcs"], "VpcId"),
        "subnets": own(ec2.describe_subnets()["Subnets"], "SubnetId"),
        "security groups": own(ec2.describe_security_groups()["SecurityGroups"], "GroupId"),
        "route tables": own(ec2.describe_route_tables()["RouteTables"], "RouteTableId"),
        "internet gateways": [g["InternetGatewayId"] for g in ec2.describe_internet_gateways()["InternetGateways"]
                              if not any(a.get("VpcId") in default_vpcs for a in g.get("Attachments", []))],
        "nat gateways": [n["NatGatewayId"] for n in ec2.describe_nat_gateways()["NatGateways"]
                         if n["State"] not in ("deleted", "deleting")],
        "elastic ips": [a.get("AllocationId") for a in ec2.describe_addresses()["Addresses"]],
        "network interfaces": own(ec2.describe_network_interfaces()["NetworkInterfaces"], "NetworkInterfaceId"),
        "load balancers": [lb["LoadBalancerArn"] for lb in elbv2.describe_load_balancers()["LoadBalancers"]],
        "target groups": [tg["TargetGroupArn"] for tg in elbv2.describe_target_groups()["TargetGroups"]],
        "ecs clusters": [],
        "ecs services": [],
        "ecs tasks": [],
        "task definitions": ecs.list_task_definitions(status="ACTIVE")["taskDefinitionArns"],
        "ecr repositories": [r["repositoryName"] for r in client("ecr").describe_repositories()["repositories"]],
        "lambda functions": [f["FunctionName"] for f in client("lambda").list_functions()["Functions"]],
        "log groups": [g["logGroupName"] for g in client("logs").describe_log_groups()["logGroups"]],
        "iam roles": [],
        "alarms": [a["AlarmName"] for a in client("cloudwatch").describe_alarms()["MetricAlarms"]],
        "scalable targets": [t["ResourceId"] for t in client("application-autoscaling").describe_scalable_targets(
            ServiceNamespace="ecs")["ScalableTargets"]],
        "scaling policies": [p["PolicyName"] for p in client("application-autoscaling").describe_scaling_policies(
            ServiceNamespace="ecs")["ScalingPolicies"]],
        "eventbridge rules": [r["Name"] for r in client("events").list_rules()["Rules"]],
        "sqs queues": client("sqs").list_queues().get("QueueUrls", []),
        "ssm parameters": [p["Name"] for p in client("ssm").describe_parameters()["Parameters"]],
        "stacks": [s["StackName"] for s in client("cloudformation").list_stacks()["StackSummaries"]
                   if s["StackStatus"] != "DELETE_COMPLETE"],
        "exports": [e["Name"] for e in client("cloudformation").list_exports()["Exports"]],
    }
    for arn in ecs.list_clusters()["clusterArns"]:
        cluster = ecs.describe_clusters(clusters=[arn])["clusters"]
        if cluster and cluster[0]["status"] == "ACTIVE":
            found["ecs clusters"].append(arn)
            services = ecs.list_services(cluster=arn)["serviceArns"]
            if services:
                described = ecs.describe_services(cluster=arn, services=services)["services"]
                found["ecs services"] += [s["serviceArn"] for s in described if s["status"] != "INACTIVE"]
            found["ecs tasks"] += ecs.list_tasks(cluster=arn)["taskArns"]
    for role in client("iam").list_roles()["Roles"]:
        if not role["Path"].startswith("/aws-service-role/"):
            found["iam roles"].append(role["RoleName"])
    return {kind: ids for kind, ids in found.items() if ids}
