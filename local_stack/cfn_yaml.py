"""CloudFormation's YAML: the short-form intrinsics (`!Ref`, `!Sub`, `!GetAtt A.B`, ...) read as
their long forms, and a key given twice refused.

PyYAML with one multi-constructor, rather than cfn-lint's loader: importing `cfnlint.decode`
imports all of cfn-lint (its rules, and sympy for conditions), about 2 s of CPU on every
local-stack start and every `make invoke`. tests/local_stack/test_cfn_yaml.py checks that both
loaders read this repository's templates the same."""

from __future__ import annotations

from typing import Any

import yaml

# `!Ref` and `!Condition` keep their names; every other tag is a function (`!Sub` -> `Fn::Sub`).
_UNPREFIXED = {"Ref", "Condition"}

_BaseLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class DuplicateKeyError(yaml.YAMLError):
    pass


class _CfnLoader(_BaseLoader):  # type: ignore[misc, valid-type]
    pass


def _mapping(loader: _CfnLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    result: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in result:
            mark = key_node.start_mark
            raise DuplicateKeyError(f'duplicate key "{key}" at line {mark.line + 1}, column {mark.column + 1}')
        result[key] = loader.construct_object(value_node, deep=True)
    return result


def _intrinsic(loader: _CfnLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = suffix if suffix in _UNPREFIXED else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if name == "Fn::GetAtt":
            value = value.split(".", 1)  # `!GetAtt Resource.Attribute`
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = _mapping(loader, node)
    return {name: value}


_CfnLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)
_CfnLoader.add_multi_constructor("!", _intrinsic)


def load(path: str) -> Any:
    """The template at `path` as plain dicts and lists; yaml.YAMLError if it does not parse."""
    with open(path, encoding="utf-8") as stream:
        return yaml.load(stream, Loader=_CfnLoader)
