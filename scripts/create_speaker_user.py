"""Create a speaker in a deployed stack's Cognito user pool: `make speaker-user EMAIL=...`.

The pool only lets administrators create users (template.yaml, AllowAdminCreateUserOnly), so the
first speaker of a new stack is made here. By default Cognito emails a temporary password that
must be changed at first sign-in; `--set-password` instead asks for a permanent one at a prompt,
so it never lands in the shell history.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Callable, Sequence

import boto3
from botocore.exceptions import BotoCoreError, ClientError

DEFAULT_STACK = "live-translation-sessions-dev"  # samconfig.toml, [dev.global.parameters]


class SpeakerUserError(Exception):
    """A one-line reason the speaker could not be created."""


def user_pool_of(stack_name: str, cloudformation) -> str:
    try:
        (stack,) = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    except ClientError as error:
        raise SpeakerUserError(f"stack {stack_name}: {error.response['Error']['Message']}") from error
    outputs = {output["OutputKey"]: output["OutputValue"] for output in stack.get("Outputs", [])}
    if "UserPoolId" not in outputs:
        raise SpeakerUserError(f"stack {stack_name} has no UserPoolId output; is it this project's stack?")
    return outputs["UserPoolId"]


def create_speaker(
    email: str,
    user_pool_id: str,
    cognito,
    *,
    permanent_password: str | None = None,
) -> str:
    """Create the user (email verified, so it can sign in and reset its password); returns its
    username. With a permanent password, Cognito sends nothing and no change is forced."""
    try:
        cognito.admin_create_user(
            UserPoolId=user_pool_id,
            Username=email,
            UserAttributes=[
                {"Name": "email", "Value": email},
                {"Name": "email_verified", "Value": "true"},
            ],
            **({"MessageAction": "SUPPRESS"} if permanent_password else {"DesiredDeliveryMediums": ["EMAIL"]}),
        )
        if permanent_password:
            cognito.admin_set_user_password(
                UserPoolId=user_pool_id, Username=email, Password=permanent_password, Permanent=True
            )
    except ClientError as error:
        code, message = error.response["Error"]["Code"], error.response["Error"]["Message"]
        if code == "UsernameExistsException":
            raise SpeakerUserError(f"a user with that email already exists in {user_pool_id}") from error
        raise SpeakerUserError(f"{code}: {message}") from error
    return email


def _arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="make speaker-user", description=__doc__.splitlines()[0])
    parser.add_argument("--email", required=True, help="the speaker's email address, also the username")
    parser.add_argument("--stack-name", default=DEFAULT_STACK, help=f"deployed stack (default {DEFAULT_STACK})")
    parser.add_argument("--user-pool-id", help="the pool itself, instead of reading the stack's UserPoolId output")
    parser.add_argument("--region", help="AWS region (default: the AWS CLI's)")
    parser.add_argument("--set-password", action="store_true", help="ask for a permanent password instead")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None, *, ask_password: Callable[[str], str] = getpass.getpass) -> int:
    arguments = _arguments(argv)
    if "@" not in arguments.email:
        print(f"make speaker-user: EMAIL must be an email address, got {arguments.email!r}", file=sys.stderr)
        return 2
    try:
        session = boto3.session.Session(region_name=arguments.region)
        pool = arguments.user_pool_id or user_pool_of(arguments.stack_name, session.client("cloudformation"))
        password = None
        if arguments.set_password:
            password = ask_password("Password (12+ characters, upper, lower and digits): ")
            if password != ask_password("Again: "):
                raise SpeakerUserError("the two passwords differ")
        create_speaker(arguments.email, pool, session.client("cognito-idp"), permanent_password=password)
    except SpeakerUserError as error:
        print(f"make speaker-user: {error}", file=sys.stderr)
        return 1
    except BotoCoreError as error:  # no credentials, no region, no network
        print(f"make speaker-user: {error}", file=sys.stderr)
        return 1
    how = "with the password you typed" if password else "with the temporary password Cognito emailed"
    print(f"speaker created in {pool}; they sign in {how}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
