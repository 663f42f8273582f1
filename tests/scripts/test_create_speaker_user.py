"""`make speaker-user`: the first speaker of a deployed stack, against moto's Cognito and
CloudFormation."""

from __future__ import annotations

import json

import boto3
import pytest

from scripts.create_speaker_user import main

STACK = "live-translation-sessions-test"


@pytest.fixture
def pool(aws):
    cognito = boto3.client("cognito-idp", region_name="us-east-1")
    pool_id = cognito.create_user_pool(PoolName="speakers", UsernameAttributes=["email"])["UserPool"]["Id"]
    template = {
        "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
        "Outputs": {"UserPoolId": {"Value": pool_id}},
    }
    boto3.client("cloudformation", region_name="us-east-1").create_stack(
        StackName=STACK, TemplateBody=json.dumps(template)
    )
    return cognito, pool_id


def test_creates_a_verified_speaker_in_the_pool_the_stack_names(pool, capsys):
    cognito, pool_id = pool
    assert main(["--email", "speaker@example.com", "--stack-name", STACK, "--region", "us-east-1"]) == 0
    user = cognito.admin_get_user(UserPoolId=pool_id, Username="speaker@example.com")
    attributes = {a["Name"]: a["Value"] for a in user["UserAttributes"]}
    assert attributes["email"] == "speaker@example.com"
    assert attributes["email_verified"] == "true"
    assert user["UserStatus"] == "FORCE_CHANGE_PASSWORD"
    assert pool_id in capsys.readouterr().out


def test_a_permanent_password_is_asked_twice_and_needs_no_change(pool):
    cognito, pool_id = pool
    answers = iter(["Correct-Horse-42", "Correct-Horse-42"])
    code = main(
        ["--email", "s@example.com", "--stack-name", STACK, "--region", "us-east-1", "--set-password"],
        ask_password=lambda prompt: next(answers),
    )
    assert code == 0
    assert cognito.admin_get_user(UserPoolId=pool_id, Username="s@example.com")["UserStatus"] == "CONFIRMED"


def test_differing_passwords_create_nobody(pool, capsys):
    cognito, pool_id = pool
    answers = iter(["Correct-Horse-42", "Correct-Horse-43"])
    code = main(
        ["--email", "s@example.com", "--stack-name", STACK, "--region", "us-east-1", "--set-password"],
        ask_password=lambda prompt: next(answers),
    )
    assert code == 1
    assert "differ" in capsys.readouterr().err
    assert cognito.list_users(UserPoolId=pool_id)["Users"] == []


def test_an_existing_speaker_is_one_line_not_a_traceback(pool, capsys):
    arguments = ["--email", "speaker@example.com", "--stack-name", STACK, "--region", "us-east-1"]
    assert main(arguments) == 0
    assert main(arguments) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("make speaker-user: a user with that email already exists")


def test_a_stack_that_does_not_exist_is_named(aws, capsys):
    assert main(["--email", "s@example.com", "--stack-name", "nope", "--region", "us-east-1"]) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "nope" in line


def test_a_malformed_email_is_refused_before_any_call(capsys):
    assert main(["--email", "not-an-email", "--region", "us-east-1"]) == 2
    assert "EMAIL must be an email address" in capsys.readouterr().err
