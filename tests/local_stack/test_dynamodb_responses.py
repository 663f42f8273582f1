"""The embedded DynamoDB's answers (local_stack/dynamodb_responses.py) are the ones stock moto
gives, item for item: every kind of AttributeValue against moto's own serializer, and whole
Query, Scan, GetItem, BatchGetItem and UpdateItem answers against a stock moto server over HTTP,
with boto3, through KEYS_ONLY and INCLUDE indexes and projection expressions."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import dynamodb
from hypothesis import given
from hypothesis import strategies as st
from moto.core.serialize import JSONSerializer
from moto.core.utils import get_service_model
from moto.dynamodb.models import table as table_module
from moto.dynamodb.models.dynamo_type import DynamoType, Item
from moto.dynamodb.models.table import Table

from local_stack import dynamodb_responses
from local_stack.errors import LocalStackError

DYNAMODB_MODEL = get_service_model("dynamodb")


@pytest.fixture(autouse=True)
def stock_moto() -> Iterator[None]:
    # Before as well as after: another test file may have started an EmbeddedAws in this process,
    # which installs the fast path and leaves it in place.
    dynamodb_responses.uninstall()
    yield
    dynamodb_responses.uninstall()


def serialize_with_moto(operation: str, result: dict[str, Any]) -> Any:
    serializer = JSONSerializer(operation_model=DYNAMODB_MODEL.operation_model(operation))
    return json.loads(serializer.serialize(result)["body"])


# AttributeValues in the form moto's DynamoDB answers hold them (dynamo_to_dict: bytes for B).
# Numbers within DynamoDB's 38 significant digits: a longer one is refused at the write, and
# boto3's deserializer raises decimal.Rounded on it (a clean make test drew one).
numbers = st.one_of(
    st.integers(-(10**20), 10**20),
    st.decimals(min_value=-(10**20), max_value=10**20, allow_nan=False, allow_infinity=False, places=4),
).map(str)
scalars = st.one_of(
    st.builds(lambda text: {"S": text}, st.text(max_size=12)),
    st.builds(lambda number: {"N": number}, numbers),
    st.builds(lambda data: {"B": data}, st.binary(max_size=12)),
    st.builds(lambda texts: {"SS": texts}, st.lists(st.text(max_size=6), min_size=1, max_size=4, unique=True)),
    st.builds(lambda numbers_: {"NS": numbers_}, st.lists(numbers, min_size=1, max_size=4, unique=True)),
    st.builds(lambda blobs: {"BS": blobs}, st.lists(st.binary(max_size=6), min_size=1, max_size=3, unique=True)),
    st.just({"NULL": True}),
    st.builds(lambda flag: {"BOOL": flag}, st.booleans()),
)
attribute_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        # Names of at least one character, as DynamoDB requires (moto drops an empty one).
        st.builds(
            lambda members: {"M": members}, st.dictionaries(st.text(min_size=1, max_size=6), children, max_size=4)
        ),
        st.builds(lambda members: {"L": members}, st.lists(children, max_size=4)),
    ),
    max_leaves=12,
)


@given(st.dictionaries(st.text(min_size=1, max_size=8), attribute_values, min_size=1, max_size=6))
def test_every_attribute_value_is_written_as_moto_writes_it(item):
    dynamodb_responses.uninstall()
    stock = serialize_with_moto("GetItem", {"Item": item})
    assert dynamodb_responses.attribute_value({"M": item}) == {"M": stock["Item"]}
    dynamodb_responses.install()
    try:
        assert serialize_with_moto("GetItem", {"Item": item}) == stock
    finally:
        dynamodb_responses.uninstall()


def test_the_fast_path_writes_exactly_what_moto_writes():
    item = {
        "text": {"S": "grace and peace"},
        "empty": {"S": ""},
        "count": {"N": "-12.50"},
        "blob": {"B": b"\x00\xffbytes"},
        "tags": {"SS": ["a", "b"]},
        "scores": {"NS": ["1", "2.5"]},
        "blobs": {"BS": [b"x", b"\x01"]},
        "nothing": {"NULL": True},
        "flag": {"BOOL": False},
        "nested": {"M": {"list": {"L": [{"S": "x"}, {"M": {"b": {"B": b"y"}}}, {"NULL": True}]}}},
    }
    stock = serialize_with_moto("GetItem", {"Item": item})
    dynamodb_responses.install()
    assert serialize_with_moto("GetItem", {"Item": item}) == stock
    assert stock["Item"]["blob"] == {"B": base64.b64encode(b"\x00\xffbytes").decode()}


def test_a_value_outside_the_union_is_left_to_moto():
    with pytest.raises(dynamodb_responses._NotAnAttributeValue):
        dynamodb_responses.attribute_value({"X": "1"})
    stock = serialize_with_moto("GetItem", {"Item": {"odd": {"X": "1"}, "fine": {"S": "a"}}})
    dynamodb_responses.install()
    assert serialize_with_moto("GetItem", {"Item": {"odd": {"X": "1"}, "fine": {"S": "a"}}}) == stock


def stored(attributes: dict[str, Any]) -> Item:
    return Item(hash_key=DynamoType(attributes["id"]), range_key=None, attrs=attributes)


def test_a_projection_of_top_level_scalars_copies_them_as_stored():
    item = stored(
        {"id": {"S": "c1"}, "sessionId": {"S": "s"}, "n": {"N": "7"}, "on": {"BOOL": True}, "other": {"S": "x"}}
    )
    projected = dynamodb_responses.project(item, [["n"], ["id"], ["missing"], ["on"], ["n"]])
    assert projected is not None
    assert list(projected.attrs) == ["n", "id", "on"]
    assert projected.attrs["n"] == item.attrs["n"] and projected.attrs["n"] is not item.attrs["n"]
    assert projected.to_json() == item.project([["n"], ["id"], ["missing"], ["on"], ["n"]]).to_json()


@pytest.mark.parametrize(
    ("attributes", "expressions"),
    [
        ({"id": {"S": "c1"}, "m": {"M": {"a": {"S": "x"}}}}, [["m", "a"]]),  # a nested path
        ({"id": {"S": "c1"}, "b": {"B": "eA=="}}, [["id"], ["b"]]),  # binary
        ({"id": {"S": "c1"}, "m": {"M": {"a": {"S": "x"}}}}, [["m"]]),  # a map
        ({"id": {"S": "c1"}, "l": {"L": [{"S": "x"}]}}, [["l"]]),  # a list
        ({"id": {"S": "c1"}, "l": {"L": [{"S": "x"}]}}, [["l[0]"]]),  # a list element
        ({"id": {"S": "c1"}, "missing": {"S": "x"}}, [["id"], ["l[0]"]]),  # an element of no list
        ({"id": {"S": "c1"}, "n": {"N": "007"}}, [["n"]]),  # a number moto rewrites
        ({"id": {"S": "c1"}, "n": {"N": "1.50"}}, [["n"]]),  # not an integer
        ({"id": {"S": "c1"}, "n": {"N": "-0"}}, [["n"]]),
        ({"id": {"S": "c1"}, "ns": {"NS": ["1", "1.0"]}}, [["ns"]]),  # a number set moto merges
        ({"id": {"S": "c1"}, "ss": {"SS": ["0", ""]}}, [["ss"]]),  # a string set moto reorders
    ],
)
def test_other_projections_are_left_to_moto(attributes, expressions):
    assert dynamodb_responses.project(stored(attributes), expressions) is None
    stock = stored(attributes).project(expressions).to_json()
    dynamodb_responses.install()
    assert stored(attributes).project(expressions).to_json() == stock


@given(
    st.dictionaries(
        st.text(alphabet="abcn", min_size=1, max_size=3),
        st.one_of(
            st.builds(lambda text: {"S": text}, st.text(max_size=4)),
            st.builds(lambda n: {"N": n}, st.integers(-(10**12), 10**12).map(str)),
            st.builds(lambda n: {"N": n}, st.from_regex(r"-?0*[0-9]{1,3}(\.[0-9]{0,2}0*)?", fullmatch=True)),
            st.builds(lambda texts: {"SS": texts}, st.lists(st.text(max_size=3), min_size=1, max_size=3, unique=True)),
            st.just({"NULL": True}),
            st.builds(lambda flag: {"BOOL": flag}, st.booleans()),
        ),
        max_size=5,
    ),
    st.lists(st.text(alphabet="abcn[0]", min_size=1, max_size=4), min_size=1, max_size=4),
)
def test_a_projection_is_moto_s_projection(attributes, names):
    item = stored({**attributes, "id": {"S": "c1"}})
    expressions = [[name] for name in names]
    stock = Item.project(item, expressions).to_json()
    projected = dynamodb_responses.project(item, expressions)
    present = [item.attrs[name] for name in names if name in item.attrs]
    if all("[" not in name for name in names) and all(dynamodb_responses._copied_as_stored(v) for v in present):
        assert projected is not None, (attributes, names)  # the fast path takes what it can
    assert projected is None or projected.to_json() == stock


def test_another_moto_fails_loudly(monkeypatch):
    stock = (JSONSerializer._serialize, Item.project, Table.query, table_module.copy)
    monkeypatch.setattr(dynamodb_responses, "version", lambda name: "5.3.0")
    with pytest.raises(LocalStackError, match=r"moto 5\.2\.5, found 5\.3\.0"):
        dynamodb_responses.install()
    assert (JSONSerializer._serialize, Item.project, Table.query, table_module.copy) == stock


def test_uninstall_gives_moto_back_its_own_query_and_copy():
    stock = (JSONSerializer._serialize, Item.project, Table.query, table_module.copy)
    dynamodb_responses.install()
    assert Table.query is not stock[2] and table_module.copy is not stock[3]
    dynamodb_responses.uninstall()
    assert (JSONSerializer._serialize, Item.project, Table.query, table_module.copy) == stock


def room(endpoint: str, table: str) -> str:
    """A Connections-shaped table with the template's KEYS_ONLY listener index, an INCLUDE index,
    and listeners whose items carry every kind of value."""
    client = dynamodb(endpoint)
    client.create_table(
        TableName=table,
        AttributeDefinitions=[
            {"AttributeName": name, "AttributeType": "S"} for name in ("connectionId", "sessionId", "targetLanguage")
        ],
        KeySchema=[{"AttributeName": "connectionId", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
        GlobalSecondaryIndexes=[
            {
                "IndexName": "sessionId-targetLanguage-index",
                "KeySchema": [
                    {"AttributeName": "sessionId", "KeyType": "HASH"},
                    {"AttributeName": "targetLanguage", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            },
            {
                "IndexName": "with-role",
                "KeySchema": [{"AttributeName": "sessionId", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["role", "lastSeenAt", "avatar"]},
            },
            {
                "IndexName": "everything",
                "KeySchema": [{"AttributeName": "targetLanguage", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "ALL"},
            },
        ],
    )
    for number in range(30):
        item: dict[str, Any] = {
            "connectionId": {"S": f"c{number:03d}="},
            "sessionId": {"S": "faithful-shepherd-427" if number % 5 else "other-session-1"},
            "targetLanguage": {"S": ("es", "fr", "de")[number % 3]},
            "role": {"S": "listener"},
            "lastSeenAt": {"N": str(1767600000000 + number)},
            "hb29460000": {"N": "3"},
            "tags": {"SS": ["a", f"t{number}"]},
            "flags": {"M": {"muted": {"BOOL": number % 2 == 0}, "n": {"NULL": True}}},
            "history": {"L": [{"N": "1"}, {"S": "x"}]},
        }
        if number % 4 == 0:
            item["avatar"] = {"B": bytes([number, 255, 0])}
        client.put_item(TableName=table, Item=item)
    return table


def answers(endpoint: str, table: str) -> dict[str, Any]:
    client = dynamodb(endpoint)
    session = {":session": {"S": "faithful-shepherd-427"}}
    found: dict[str, Any] = {
        "keys only": client.query(
            TableName=table,
            IndexName="sessionId-targetLanguage-index",
            KeyConditionExpression="sessionId = :session",
            ExpressionAttributeValues=session,
        ),
        "one language": client.query(
            TableName=table,
            IndexName="sessionId-targetLanguage-index",
            KeyConditionExpression="sessionId = :session AND targetLanguage = :language",
            ExpressionAttributeValues={**session, ":language": {"S": "fr"}},
            ProjectionExpression="connectionId",
        ),
        "keys only, two names": client.query(
            TableName=table,
            IndexName="sessionId-targetLanguage-index",
            KeyConditionExpression="sessionId = :session",
            ExpressionAttributeValues=session,
            ProjectionExpression="connectionId, targetLanguage",
        ),
        "include, filtered": client.query(
            TableName=table,
            IndexName="with-role",
            KeyConditionExpression="sessionId = :session",
            FilterExpression="attribute_exists(avatar)",
            ExpressionAttributeValues=session,
        ),
        "all, projected": client.query(
            TableName=table,
            IndexName="everything",
            KeyConditionExpression="targetLanguage = :language",
            ExpressionAttributeValues={":language": {"S": "es"}},
            ProjectionExpression="connectionId, flags.muted, history[1]",
        ),
        "all": client.query(
            TableName=table,
            IndexName="everything",
            KeyConditionExpression="targetLanguage = :language",
            ExpressionAttributeValues={":language": {"S": "de"}},
        ),
        "include, paged": client.query(
            TableName=table,
            IndexName="with-role",
            KeyConditionExpression="sessionId = :session",
            ExpressionAttributeValues=session,
            Limit=7,
        ),
        "projected scan": client.scan(TableName=table, ProjectionExpression="connectionId, tags, flags.muted"),
        "scan": client.scan(TableName=table),
        "get": client.get_item(TableName=table, Key={"connectionId": {"S": "c004="}}, ConsistentRead=True),
        "batch get": client.batch_get_item(
            RequestItems={table: {"Keys": [{"connectionId": {"S": f"c00{n}="}} for n in range(4)]}}
        )["Responses"][table],
    }
    found["update"] = client.update_item(
        TableName=table,
        Key={"connectionId": {"S": "c008="}},
        UpdateExpression="SET lastSeenAt = :now ADD hb29460001 :one",
        ExpressionAttributeValues={":now": {"N": "1767600009999"}, ":one": {"N": "1"}},
        ReturnValues="ALL_NEW",
    )
    for answer in found.values():
        if isinstance(answer, dict):
            answer.pop("ResponseMetadata", None)
    found["batch get"].sort(key=lambda item: item["connectionId"]["S"])
    return normalised(found)


def normalised(value: Any) -> Any:
    """Sets compare as sets (DynamoDB promises no order); numbers as the strings sent."""
    if isinstance(value, dict):
        return {key: sorted(inner) if key in ("SS", "NS", "BS") else normalised(inner) for key, inner in value.items()}
    if isinstance(value, list):
        return [normalised(member) for member in value]
    return value


def test_whole_answers_are_stock_moto_answers(moto_endpoint, monkeypatch):
    table = f"connections-{uuid.uuid4().hex[:8]}"
    stock = answers(moto_endpoint, room(moto_endpoint, table))
    dynamodb(moto_endpoint).delete_table(TableName=table)
    dynamodb_responses.install()
    # The fast paths must be the ones answering, not moto's behind them.
    fast_paths = {"written": 0, "projected": 0}
    write, project = dynamodb_responses.attribute_value, dynamodb_responses.project

    def counted_write(value):
        fast_paths["written"] += 1
        return write(value)

    def counted_project(item, expressions):
        projected = project(item, expressions)
        fast_paths["projected"] += projected is not None
        return projected

    shallow = dynamodb_responses._CopyForTable.deepcopy

    def counted_copy(value, *args):
        copied = shallow(value, *args)
        kept = isinstance(value, list) and bool(value) and copied[0] is value[0]
        fast_paths["not deep-copied"] = fast_paths.get("not deep-copied", 0) + kept
        return copied

    monkeypatch.setattr(dynamodb_responses, "attribute_value", counted_write)
    monkeypatch.setattr(dynamodb_responses, "project", counted_project)
    monkeypatch.setattr(dynamodb_responses._CopyForTable, "deepcopy", staticmethod(counted_copy))
    fast = answers(moto_endpoint, room(moto_endpoint, table))
    assert fast_paths["written"] > 30 * 9 and fast_paths["projected"] >= 24, fast_paths
    # The keys-only and include Queries skipped the whole-item copy; the ALL ones did not
    assert fast_paths["not deep-copied"] == 5, fast_paths
    assert fast == stock
    assert len(fast["keys only"]["Items"]) == 24
    assert set(fast["keys only"]["Items"][0]) == {"connectionId", "sessionId", "targetLanguage"}
    assert "LastEvaluatedKey" in fast["include, paged"]
