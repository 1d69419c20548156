"""Sets up a moto server for tagstrap's AWS tests, before its request
authentication is switched on (testkit/src/moto.rs): IAM roles with inline
policies, temporary credentials for each (sts:AssumeRole, which moto then
verifies, session token included), Secrets Manager secrets and SSM
parameters. Reads the plan as JSON on stdin, prints what it made as JSON."""
import json
import sys

import boto3

plan = json.load(sys.stdin)
endpoint = plan["endpoint"]
region = plan["region"]
common = dict(
    endpoint_url=endpoint,
    region_name=region,
    aws_access_key_id="AKIASETUPONLY0000000",
    aws_secret_access_key="setup-only",
)
iam = boto3.client("iam", **common)
sts = boto3.client("sts", **common)
secrets = boto3.client("secretsmanager", **common)
ssm = boto3.client("ssm", **common)

trust = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "ec2.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
)
out = {"roles": {}, "secrets": {}}
for role in plan["roles"]:
    arn = iam.create_role(RoleName=role["name"], AssumeRolePolicyDocument=trust)["Role"]["Arn"]
    if role["actions"]:
        policy = {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": role["actions"], "Resource": "*"}],
        }
        iam.put_role_policy(
            RoleName=role["name"], PolicyName="tagstrap-read", PolicyDocument=json.dumps(policy)
        )
    profile = iam.create_instance_profile(InstanceProfileName=role["name"] + "-profile")
    iam.add_role_to_instance_profile(
        InstanceProfileName=role["name"] + "-profile", RoleName=role["name"]
    )
    sets = []
    for n in range(role.get("sets", 1)):
        c = sts.assume_role(RoleArn=arn, RoleSessionName="i-0b22a22eec53b9321")["Credentials"]
        sets.append(
            {
                "access_key_id": c["AccessKeyId"],
                "secret_access_key": c["SecretAccessKey"],
                "session_token": c["SessionToken"],
            }
        )
    out["roles"][role["name"]] = {
        "arn": arn,
        "instance_profile_arn": profile["InstanceProfile"]["Arn"],
        "credentials": sets,
    }
for name, value in plan["secrets"].items():
    out["secrets"][name] = secrets.create_secret(Name=name, SecretString=value)["ARN"]
for name, (value, kind) in plan["parameters"].items():
    ssm.put_parameter(Name=name, Value=value, Type=kind)
json.dump(out, sys.stdout)
