"""What template.yaml promises for running it in production: alarms, dashboard, access logs,
gradual deploys, SnapStart, retention of data, the rate-limit secret, bounded parameters and a
reason for every skipped security check."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from cfnlint.decode import decode

ROOT = Path(__file__).resolve().parents[2]
NAMESPACE = {"Fn::Sub": "LiveTranslation/${EnvironmentName}"}
SERVICE = [{"Name": "service", "Value": "session-manager"}]


def _functions_of_the_template() -> list[str]:
    parsed, _ = decode(str(ROOT / "template.yaml"))
    return [name for name, r in parsed["Resources"].items() if r["Type"] == "AWS::Serverless::Function"]


# Read from the template, so a function added later must get its alarms and dashboard lines too.
FUNCTIONS = _functions_of_the_template()
RATE_LIMITING = [
    "ConnectFunction",
    "CreateSessionFunction",
    "JoinSessionFunction",
    "RefreshConnectionFunction",
    "SendCaptionFunction",
]
SNAPSTART = [
    "AuthorizerFunction",
    "ConnectFunction",
    "CreateSessionFunction",
    "JoinSessionFunction",
    "HeartbeatFunction",
]


@pytest.fixture(scope="module")
def template():
    parsed, matches = decode(str(ROOT / "template.yaml"))
    assert not matches, matches
    return parsed


@pytest.fixture(scope="module")
def resources(template):
    return template["Resources"]


def of_type(resources, resource_type):
    return {name: r for name, r in resources.items() if r["Type"] == resource_type}


# (alarm, namespace, metric, dimensions, statistic, period, threshold, comparison)
CUSTOM_ALARMS = [
    ("SessionCreationLatencyAlarm", "SessionCreationLatency", "p95", 300, 2000, "GreaterThanThreshold"),
    ("ConnectionErrorsAlarm", "ConnectionErrors", "Sum", 300, 100, "GreaterThanThreshold"),
    (
        "ActiveSessionsAlarm",
        "ActiveSessions",
        "Maximum",
        300,
        {"Ref": "ActiveSessionsAlarmThreshold"},
        "GreaterThanOrEqualToThreshold",
    ),
    ("MisconfigurationAlarm", "MisconfigurationErrors", "Sum", 60, 0, "GreaterThanThreshold"),
]


@pytest.mark.parametrize(("alarm", "metric", "statistic", "period", "threshold", "comparison"), CUSTOM_ALARMS)
def test_each_alarm_on_the_code_s_metrics(resources, alarm, metric, statistic, period, threshold, comparison):
    properties = resources[alarm]["Properties"]
    assert (properties["Namespace"], properties["MetricName"], properties["Dimensions"]) == (NAMESPACE, metric, SERVICE)
    assert properties.get("ExtendedStatistic", properties.get("Statistic")) == statistic
    assert (properties["Period"], properties["Threshold"], properties["ComparisonOperator"]) == (
        period,
        threshold,
        comparison,
    )


def test_init_failures_alarm_reads_the_metric_filters_count(resources):
    properties = resources["LambdaInitFailuresAlarm"]["Properties"]
    assert (properties["Namespace"], properties["MetricName"], properties["Statistic"]) == (
        NAMESPACE,
        "InitFailures",
        "Sum",
    )
    assert (properties["Period"], properties["Threshold"], properties["ComparisonOperator"]) == (
        60,
        0,
        "GreaterThanThreshold",
    )
    assert "Dimensions" not in properties  # metric filters publish none


@pytest.mark.parametrize("function", FUNCTIONS)
@pytest.mark.parametrize("metric", ["Errors", "Throttles"])
def test_every_function_has_an_errors_and_a_throttles_alarm(resources, function, metric):
    properties = resources[f"{function.removesuffix('Function')}{metric}Alarm"]["Properties"]
    assert (properties["Namespace"], properties["MetricName"]) == ("AWS/Lambda", metric)
    assert properties["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": function}}]
    assert (properties["Statistic"], properties["Period"], properties["Threshold"]) == ("Sum", 60, 0)
    assert properties["ComparisonOperator"] == "GreaterThanThreshold"


def test_dynamodb_throttles_alarm_sums_reads_and_writes_of_every_table(resources):
    properties = resources["DynamoDBThrottlesAlarm"]["Properties"]
    stats = [m["MetricStat"] for m in properties["Metrics"] if "MetricStat" in m]
    watched = {(s["Metric"]["MetricName"], s["Metric"]["Dimensions"][0]["Value"]["Ref"]) for s in stats}
    tables = set(of_type(resources, "AWS::DynamoDB::Table"))
    assert watched == {(m, t) for m in ("ReadThrottleEvents", "WriteThrottleEvents") for t in tables}
    assert all((s["Metric"]["Namespace"], s["Stat"], s["Period"]) == ("AWS/DynamoDB", "Sum", 60) for s in stats)
    (expression,) = [m for m in properties["Metrics"] if "Expression" in m]
    assert set(re.findall(r"\w+", expression["Expression"])) == {
        m["Id"] for m in properties["Metrics"] if "MetricStat" in m
    }
    assert (properties["Threshold"], properties["ComparisonOperator"]) == (0, "GreaterThanThreshold")


@pytest.mark.parametrize("table", ["SessionsTable", "ConnectionsTable", "RateLimitsTable"])
def test_dynamodb_system_errors_alarm_per_table_over_every_operation(resources, table):
    properties = resources[f"{table}SystemErrorsAlarm"]["Properties"]
    (query,) = properties["Metrics"]
    assert query["Expression"]["Fn::Sub"] == (
        f"SELECT SUM(SystemErrors) FROM SCHEMA(\"AWS/DynamoDB\", Operation, TableName) WHERE TableName = '${{{table}}}'"
    )
    assert (query["Period"], properties["Threshold"], properties["ComparisonOperator"]) == (
        60,
        0,
        "GreaterThanThreshold",
    )


def test_api_gateway_integration_errors_alarm(resources):
    properties = resources["ApiIntegrationErrorsAlarm"]["Properties"]
    assert (properties["Namespace"], properties["MetricName"], properties["Statistic"]) == (
        "AWS/ApiGateway",
        "IntegrationError",
        "Sum",
    )
    assert properties["Dimensions"] == [
        {"Name": "ApiId", "Value": {"Ref": "WebSocketApi"}},
        {"Name": "Stage", "Value": {"Ref": "StageName"}},
    ]
    assert (properties["Period"], properties["Threshold"]) == (300, 50)


def test_sweeper_failures_alarm_watches_its_dead_letter_queue(resources):
    properties = resources["SweeperFailuresAlarm"]["Properties"]
    assert properties["MetricName"] == "ApproximateNumberOfMessagesVisible"
    assert properties["Dimensions"][0]["Value"] == {"Fn::GetAtt": ["SweeperFailureQueue", "QueueName"]}
    sweeper = resources["SweeperFunction"]["Properties"]
    assert sweeper["DeadLetterQueue"] == {"Type": "SQS", "TargetArn": {"Fn::GetAtt": ["SweeperFailureQueue", "Arn"]}}
    assert sweeper["EventInvokeConfig"]["MaximumRetryAttempts"] == 0


def test_every_alarm_notifies_the_topic_both_ways(resources):
    for name, alarm in of_type(resources, "AWS::CloudWatch::Alarm").items():
        assert alarm["Properties"]["AlarmActions"] == [{"Ref": "AlarmTopic"}], name
        assert alarm["Properties"]["OKActions"] == [{"Ref": "AlarmTopic"}], name
        assert alarm["Properties"]["TreatMissingData"] == "notBreaching", name


def test_the_topic_is_under_a_customer_key_cloudwatch_may_use(resources):
    assert resources["AlarmTopic"]["Properties"]["KmsMasterKeyId"] == {"Ref": "AlarmTopicKey"}
    key = resources["AlarmTopicKey"]["Properties"]
    assert key["EnableKeyRotation"] is True
    (cloudwatch,) = [
        s for s in key["KeyPolicy"]["Statement"] if s["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    ]
    assert set(cloudwatch["Action"]) == {"kms:Decrypt", "kms:GenerateDataKey*"}


def test_access_logs_have_the_fields_and_never_the_query_string_or_the_source_ip(resources):
    settings = resources["WebSocketStage"]["Properties"]["AccessLogSettings"]
    assert settings["DestinationArn"] == {"Fn::GetAtt": ["AccessLogGroup", "Arn"]}
    line = json.loads(settings["Format"].replace("$context.error.messageString", '"x"'))
    assert {"requestId", "connectionId", "route", "status", "integrationLatency", "error"} <= set(line)
    for forbidden in ("sourceIp", "identity", "querystring", "queryString", "$request", "header"):
        assert forbidden not in settings["Format"], forbidden
    assert resources["AccessLogGroup"]["Properties"]["RetentionInDays"] == 1


def test_deploys_are_canaries_outside_dev_with_the_alarms_as_rollback_triggers(template, resources):
    globals_ = template["Globals"]["Function"]
    assert globals_["AutoPublishAlias"] == "live"
    preference = globals_["DeploymentPreference"]
    assert preference["Type"] == {"Fn::If": ["IsDev", "AllAtOnce", "Canary10Percent5Minutes"]}
    assert template["Conditions"]["IsDev"] == {"Fn::Equals": [{"Ref": "EnvironmentName"}, "dev"]}
    shared = {alarm["Ref"] for alarm in preference["Alarms"]}
    assert {"ConnectionErrorsAlarm", "LambdaInitFailuresAlarm", "MisconfigurationAlarm"} <= shared
    for function in FUNCTIONS:
        own = resources[function]["Properties"]["DeploymentPreference"]["Alarms"]
        assert own == [{"Ref": f"{function.removesuffix('Function')}ErrorsAlarm"}], function


def test_snapstart_on_the_latency_sensitive_functions_only(resources):
    for function in FUNCTIONS:
        snapstart = resources[function]["Properties"].get("SnapStart")
        assert (snapstart == {"ApplyOn": "PublishedVersions"}) == (function in SNAPSTART), function
        app = (ROOT / resources[function]["Properties"]["CodeUri"] / "app.py").read_text()
        assert ("snapstart.enable()" in app) == (function in SNAPSTART), function


@pytest.mark.parametrize("resource", ["SessionsTable", "ConnectionsTable", "RateLimitsTable", "SpeakerUserPool"])
def test_prod_retains_its_tables_and_user_pool(template, resources, resource):
    assert "AWS::LanguageExtensions" in template["Transform"]
    for policy in ("DeletionPolicy", "UpdateReplacePolicy"):
        assert resources[resource][policy] == {"Fn::If": ["IsProd", "Retain", "Delete"]}, (resource, policy)
    assert template["Conditions"]["IsProd"] == {"Fn::Equals": [{"Ref": "EnvironmentName"}, "prod"]}


def test_sessions_have_point_in_time_recovery(resources):
    assert resources["SessionsTable"]["Properties"]["PointInTimeRecoverySpecification"] == {
        "PointInTimeRecoveryEnabled": True
    }


@pytest.mark.parametrize("function", FUNCTIONS)
def test_only_the_rate_limiting_functions_may_read_the_rate_limit_key(resources, function):
    properties = resources[function]["Properties"]
    variables = (properties.get("Environment") or {}).get("Variables") or {}
    grants = [p for p in properties.get("Policies", []) if "AWSSecretsManagerGetSecretValuePolicy" in p]
    if function in RATE_LIMITING:
        assert variables["RATE_LIMIT_KEY_SECRET_ARN"] == {"Ref": "RateLimitKeySecret"}
        assert grants == [{"AWSSecretsManagerGetSecretValuePolicy": {"SecretArn": {"Ref": "RateLimitKeySecret"}}}]
    else:
        assert "RATE_LIMIT_KEY_SECRET_ARN" not in variables
        assert not grants
    secret = resources["RateLimitKeySecret"]["Properties"]["GenerateSecretString"]
    assert secret["PasswordLength"] >= 32


def test_the_sweeper_alone_has_a_concurrency_cap(resources):
    for function in FUNCTIONS:
        cap = resources[function]["Properties"].get("ReservedConcurrentExecutions")
        assert (cap is not None) == (function == "SweeperFunction"), function
    assert resources["SweeperFunction"]["Properties"]["ReservedConcurrentExecutions"] == 2


def test_every_parameter_is_bounded(template):
    for name, parameter in template["Parameters"].items():
        if parameter["Type"] == "Number":
            assert {"MinValue", "MaxValue"} <= set(parameter), name
            assert parameter["MinValue"] <= float(parameter["Default"]) <= parameter["MaxValue"], name
        else:
            assert "AllowedValues" in parameter or {"AllowedPattern", "MaxLength"} <= set(parameter), name
            if "AllowedPattern" in parameter:
                assert re.fullmatch(parameter["AllowedPattern"], str(parameter["Default"])), name


def test_every_skipped_security_check_says_why(resources):
    skips = [
        (name, skip)
        for name, resource in resources.items()
        for skip in ((resource.get("Metadata") or {}).get("checkov") or {}).get("skip", [])
    ]
    assert skips
    for name, skip in skips:
        assert re.fullmatch(r"CKV2?_AWS_\d+", skip["id"]), (name, skip)
        assert len(skip["comment"].split()) >= 6, (name, skip)


def test_the_dashboard_is_valid_json_with_every_function_on_the_lambda_graphs(resources):
    body = json.loads(resources["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"])
    titles = {w["properties"].get("title"): w for w in body["widgets"] if w["type"] == "metric"}
    for title in ("Lambda errors per function", "Lambda throttles per function", "Lambda concurrency per function"):
        charted = {row[3] for row in titles[title]["properties"]["metrics"]}
        assert charted == {f"${{{function}}}" for function in FUNCTIONS}, title
    assert any("SEARCH(" in json.dumps(w) and "ErrorCode" in json.dumps(w) for w in body["widgets"])
