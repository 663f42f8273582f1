"""The embedded DynamoDB's answers, written at the cost of the items they carry rather than of
moto's generic response serializer.

moto 5.2.5 serializes every answer by walking botocore's output shape member by member, asking
an attribute picker (three alias providers, `xform_name`) for every member of every
`AttributeValue`. A Query that returns a 500-listener room spent about 130 ms of the stack's CPU
there (and the room's caption fan-out has one per line), a GetItem about 1 ms: on the 2-core
machine the stack's share of a caption to 500 listeners (docs/benchmarks.md, "Fan-out on two
cores"). Two places cost that much, and both are replaced here:

- The projection. A KEYS_ONLY or INCLUDE index, like a ProjectionExpression of top-level names,
  projects every item it returns by converting the whole item to Python values once per projected
  name and back again (`Item.project`): about 0.1 ms per item. Here the projected attributes are
  copied as they are stored when that round trip would give them back unchanged (top-level
  strings, booleans, nulls, canonical integers); anything else still takes moto's way. And a
  Query of such an index no longer deep-copies each whole item before projecting it (about 75
  µs an item: 38 ms of a 500-listener room's Query): the projection, moto's or this one, builds
  new values, so the copy it was protecting against sharing is made of what is kept.
- The serializer. DynamoDB's `AttributeValue` is a union whose JSON form is fixed (a string for S and N,
base64 for B, lists for the sets, recursion for M and L, booleans for NULL and BOOL), so its values
are written here directly, and everything around them (Items, Count, LastEvaluatedKey, errors, the
control plane) still goes through moto's serializer. `tests/local_stack/test_dynamodb_responses.py`
checks the output against moto's own serializer for every kind of value, and whole answers
against stock moto's.

Installed only on the moto this was checked against, like local_stack/moto_dynamodb.py."""

from __future__ import annotations

import base64
import copy
import re
import threading
from importlib.metadata import version
from typing import Any

from moto.core.serialize import JSONSerializer
from moto.dynamodb.models import table as table_module
from moto.dynamodb.models.dynamo_type import DynamoType, Item
from moto.dynamodb.models.table import Table

from local_stack.errors import LocalStackError

SUPPORTED_MOTO_VERSION = "5.2.5"
ATTRIBUTE_VALUE_SHAPE = "AttributeValue"
# The services whose AttributeValue is DynamoDB's union (another service may name a shape so).
SERVICES = ("dynamodb", "dynamodbstreams")
_LOCK = threading.Lock()
_ORIGINALS: dict[str, Any] = {}


def attribute_value(value: dict[str, Any]) -> dict[str, Any]:
    """An AttributeValue as moto's JSON serializer writes it, from the plain form its DynamoDB
    answers hold (moto.dynamodb.models.utilities.dynamo_to_dict: bytes for B and BS)."""
    written: dict[str, Any] = {}
    for kind, inner in value.items():
        if inner is None:
            continue  # an absent member, as the serializer skips it
        if kind in ("S", "N"):
            written[kind] = _string(inner)
        elif kind == "B":
            written[kind] = _base64(inner)
        elif kind in ("SS", "NS"):
            written[kind] = [_string(member) for member in inner]
        elif kind == "BS":
            written[kind] = [_base64(member) for member in inner]
        elif kind == "M":
            written[kind] = {name: attribute_value(member) for name, member in inner.items()}
        elif kind == "L":
            written[kind] = [attribute_value(member) for member in inner]
        elif kind in ("NULL", "BOOL"):
            written[kind] = inner
        else:
            # Not a member of the union: leave the whole value to moto's serializer.
            raise _NotAnAttributeValue(kind)
    return written


class _NotAnAttributeValue(Exception):
    pass


def _string(value: Any) -> Any:
    # moto's string member: str() of anything but an empty container or None.
    return str(value) if value not in [None, {}, []] else value


def _base64(value: str | bytes) -> str:
    if isinstance(value, str):
        value = value.encode("utf-8")
    return base64.b64encode(value).strip().decode("utf-8")


# The stored values a projection copies as they are, because moto's round trip through Python
# values gives exactly them back: strings, booleans, nulls and numbers written as canonical
# integers, which is how this stack's writers store every number. The round trip rewrites other
# numbers ("007" comes back "7", a number set {"1", "1.0"} merges) and reorders sets (["0", ""]
# comes back ["", "0"]), so those, like binary values, maps, lists, nested paths and list
# elements (`history[0]`), take moto's way.
_COPIED_AS_STORED = frozenset({"S", "BOOL", "NULL"})
_CANONICAL_INTEGER = re.compile(r"0|-?[1-9][0-9]*")


def _copied_as_stored(value: DynamoType) -> bool:
    if value.type == "N":
        return isinstance(value.value, str) and _CANONICAL_INTEGER.fullmatch(value.value) is not None
    return value.type in _COPIED_AS_STORED


def project(item: Item, projection_expressions: list[list[str]]) -> Item | None:
    """The item with only the named top-level attributes, in the expressions' order, or None
    when an expression or a value is one that moto's own projection must handle."""
    names: list[str] = []
    for expression in projection_expressions:
        if len(expression) != 1 or "[" in expression[0]:
            return None  # a nested path or a list element
        name = expression[0]
        stored = item.attrs.get(name)
        if stored is not None and not _copied_as_stored(stored):
            return None
        if stored is not None and name not in names:
            names.append(name)
    projected = Item(hash_key=item.hash_key, range_key=item.range_key, attrs={})
    for name in names:
        # A scalar's copy: what moto's DynamoType.__deepcopy__ makes of it, without copy.deepcopy.
        projected.attrs[name] = DynamoType(item.attrs[name])
    return projected


class _ProjectingQuery(threading.local):
    """Set while a Query of a KEYS_ONLY or INCLUDE index runs in this thread (moto's server
    answers each request on a thread of its own)."""

    active = False


_PROJECTING = _ProjectingQuery()
_PROJECTING_TYPES = frozenset({"KEYS_ONLY", "INCLUDE"})


class _CopyForTable:
    """moto's table module's `copy`: the Query's deep copy of the items it is about to project is
    a shallow list when the index projects (see the module); every other copy is copy's own."""

    def __getattr__(self, name: str) -> Any:
        return getattr(copy, name)

    @staticmethod
    def deepcopy(value: Any, *args: Any) -> Any:
        if _PROJECTING.active and isinstance(value, list) and all(isinstance(item, Item) for item in value):
            return list(value)
        return copy.deepcopy(value, *args)


def _projects(table: Any, index_name: str | None) -> bool:
    if not index_name:
        return False
    index = next((index for index in table.all_indexes() if index.name == index_name), None)
    return index is not None and (index.projection or {}).get("ProjectionType") in _PROJECTING_TYPES


def install() -> None:
    """Idempotent. Raises LocalStackError on any moto other than the one this was checked against."""
    installed = version("moto")
    if installed != SUPPORTED_MOTO_VERSION:
        raise LocalStackError(
            f"the embedded DynamoDB's serializer needs moto {SUPPORTED_MOTO_VERSION}, found {installed}: "
            "check local_stack/dynamodb_responses.py against the new moto's JSON serializer, then update it"
        )
    with _LOCK:
        if _ORIGINALS:
            return
        generic = JSONSerializer._serialize
        _ORIGINALS["_serialize"] = generic

        def _serialize(self: JSONSerializer, serialized: Any, value: Any, shape: Any, key: str) -> None:
            if (
                shape.name == ATTRIBUTE_VALUE_SHAPE
                and isinstance(value, dict)
                and self.operation_model.service_model.service_name in SERVICES
            ):
                try:
                    serialized[self.get_serialized_name(shape, key)] = attribute_value(value)
                    return
                except _NotAnAttributeValue:
                    pass
            generic(self, serialized, value, shape, key)

        JSONSerializer._serialize = _serialize

        generic_project = Item.project
        _ORIGINALS["project"] = generic_project

        def _project(self: Item, projection_expressions: list[list[str]]) -> Item:
            projected = project(self, projection_expressions)
            return projected if projected is not None else generic_project(self, projection_expressions)

        Item.project = _project

        _ORIGINALS["table copy"] = table_module.copy
        table_module.copy = _CopyForTable()
        generic_query = Table.query
        _ORIGINALS["query"] = generic_query

        def _query(self: Table, *args: Any, **kwargs: Any) -> Any:
            # index_name is the eighth parameter; moto's backend passes it by position.
            index_name = args[7] if len(args) > 7 else kwargs.get("index_name")
            _PROJECTING.active = _projects(self, index_name)
            try:
                return generic_query(self, *args, **kwargs)
            finally:
                _PROJECTING.active = False

        Table.query = _query


def uninstall() -> None:
    """moto's own serializer again (for the tests that compare the two)."""
    with _LOCK:
        if _ORIGINALS:
            JSONSerializer._serialize = _ORIGINALS.pop("_serialize")
            Item.project = _ORIGINALS.pop("project")
            table_module.copy = _ORIGINALS.pop("table copy")
            Table.query = _ORIGINALS.pop("query")
