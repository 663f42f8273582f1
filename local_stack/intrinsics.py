"""CloudFormation intrinsic functions and conditions, resolved against local physical ids."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from local_stack.errors import TemplateError

REGION = "us-east-1"
ACCOUNT_ID = "123456789012"
PARTITION = "aws"
URL_SUFFIX = "amazonaws.com"
STACK_NAME = "local"


class _NoValue:
    """AWS::NoValue: the property it stands for is removed from its parent."""

    def __repr__(self) -> str:
        return "AWS::NoValue"


NO_VALUE = _NoValue()

PSEUDO_PARAMETERS: dict[str, Any] = {
    "AWS::Region": REGION,
    "AWS::AccountId": ACCOUNT_ID,
    "AWS::Partition": PARTITION,
    "AWS::URLSuffix": URL_SUFFIX,
    "AWS::StackName": STACK_NAME,
    "AWS::StackId": f"arn:aws:cloudformation:{REGION}:{ACCOUNT_ID}:stack/{STACK_NAME}/local",
    "AWS::NotificationARNs": [],
    "AWS::NoValue": NO_VALUE,
}

SAM_FUNCTION = "AWS::Serverless::Function"
SAM_FUNCTION_REFERENCES = frozenset({"Alias", "Version"})

_SUB_VARIABLE = re.compile(r"\$\{([^}]*)\}")

AttributeResolver = Callable[[str, str], Any]


class Resolver:
    """Resolves intrinsics the way CloudFormation would for a stack named `local`.

    `physical_ids` maps logical ids to what `Ref` returns; it may be filled in after creation
    (the user pool id is only known once moto made it). A resource without an entry resolves to
    its logical id, which is what the local stack uses as physical name for most resources."""

    def __init__(
        self,
        template: Mapping[str, Any],
        parameter_values: Mapping[str, str],
        attribute_resolver: AttributeResolver,
    ) -> None:
        self._parameters = template.get("Parameters") or {}
        self._resources = template.get("Resources") or {}
        self._condition_expressions = template.get("Conditions") or {}
        self._mappings = template.get("Mappings") or {}
        self._parameter_values = dict(parameter_values)
        self._attribute_resolver = attribute_resolver
        self._condition_cache: dict[str, bool] = {}
        self.physical_ids: dict[str, str] = {}

    @property
    def resources(self) -> Mapping[str, Any]:
        """The template's Resources as parsed, for readers that need more than references."""
        return self._resources

    def parameter_value(self, name: str) -> Any:
        if name in self._parameter_values:
            return self._parameter_values[name]
        declaration = self._parameters[name] or {}
        if "Default" not in declaration:
            raise TemplateError(f"parameter {name} has no Default; give it a value in ENV_VARS Parameters")
        default = declaration["Default"]
        if (
            str(declaration.get("Type", "String")).startswith("List<")
            or declaration.get("Type") == "CommaDelimitedList"
        ):
            return [item.strip() for item in str(default).split(",")]
        return str(default)

    def condition(self, name: str) -> bool:
        if name not in self._condition_cache:
            if name not in self._condition_expressions:
                raise TemplateError(f"condition {name} is not declared in Conditions")
            self._condition_cache[name] = bool(self.resolve(self._condition_expressions[name]))
        return self._condition_cache[name]

    def resource_is_active(self, logical_id: str) -> bool:
        condition = (self._resources.get(logical_id) or {}).get("Condition")
        return condition is None or self.condition(condition)

    def resolve(self, value: Any) -> Any:
        if isinstance(value, Mapping):
            if len(value) == 1:
                ((key, argument),) = value.items()
                function = _INTRINSICS.get(key)
                if function is not None:
                    return function(self, argument)
            resolved = {key: self.resolve(item) for key, item in value.items()}
            return {key: item for key, item in resolved.items() if item is not NO_VALUE}
        if isinstance(value, list):
            return [item for item in map(self.resolve, value) if item is not NO_VALUE]
        return value

    def ref(self, name: str) -> Any:
        if name in PSEUDO_PARAMETERS:
            return PSEUDO_PARAMETERS[name]
        if name in self._parameters:
            return self.parameter_value(name)
        if name in self._resources:
            return self.physical_ids.get(name, name)
        logical_id, _, reference = name.partition(".")
        if reference in SAM_FUNCTION_REFERENCES and self._resources.get(logical_id, {}).get("Type") == SAM_FUNCTION:
            # SAM's `!Ref Function.Alias` / `.Version`: the alias AutoPublishAlias publishes.
            return self._attribute_resolver(logical_id, reference)
        raise TemplateError(f"Ref to {name}, which is neither a parameter nor a resource")

    def get_att(self, logical_id: str, attribute: str) -> Any:
        if logical_id not in self._resources:
            raise TemplateError(f"Fn::GetAtt on {logical_id}, which is not a resource")
        return self._attribute_resolver(logical_id, attribute)

    def _sub(self, argument: Any) -> str:
        if isinstance(argument, list):
            text, variables = argument[0], {k: self.resolve(v) for k, v in (argument[1] or {}).items()}
        else:
            text, variables = argument, {}

        def substitute(match: re.Match[str]) -> str:
            name = match.group(1).strip()
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in variables:
                return str(variables[name])
            if "." in name and not name.startswith("AWS::"):
                logical_id, attribute = name.split(".", 1)
                return str(self.get_att(logical_id, attribute))
            return str(self.ref(name))

        return _SUB_VARIABLE.sub(substitute, str(text))

    def _get_att_intrinsic(self, argument: Any) -> Any:
        if isinstance(argument, str):
            logical_id, attribute = argument.split(".", 1)
        else:
            logical_id, attribute = argument[0], self.resolve(argument[1])
        return self.get_att(logical_id, attribute)

    def _join(self, argument: Any) -> str:
        delimiter, items = argument
        return str(delimiter).join(str(item) for item in self.resolve(items))

    def _select(self, argument: Any) -> Any:
        index, items = argument
        return self.resolve(items)[int(self.resolve(index))]

    def _split(self, argument: Any) -> list[str]:
        delimiter, text = argument
        return str(self.resolve(text)).split(delimiter)

    def _if(self, argument: Any) -> Any:
        condition, when_true, when_false = argument
        return self.resolve(when_true if self.condition(condition) else when_false)

    def _equals(self, argument: Any) -> bool:
        left, right = (self.resolve(item) for item in argument)
        return str(left) == str(right)

    def _find_in_map(self, argument: Any) -> Any:
        map_name, top_key, second_key = (self.resolve(item) for item in argument)
        try:
            return self._mappings[map_name][top_key][second_key]
        except KeyError:
            raise TemplateError(f"Fn::FindInMap finds nothing at {map_name}.{top_key}.{second_key}") from None


def _unsupported(name: str) -> Callable[[Resolver, Any], Any]:
    def fail(resolver: Resolver, argument: Any) -> Any:
        raise TemplateError(f"{name} is not supported by the local stack")

    return fail


_INTRINSICS: dict[str, Callable[[Resolver, Any], Any]] = {
    "Ref": lambda resolver, name: resolver.ref(resolver.resolve(name)),
    "Fn::GetAtt": Resolver._get_att_intrinsic,
    "Fn::Sub": Resolver._sub,
    "Fn::Join": Resolver._join,
    "Fn::Select": Resolver._select,
    "Fn::Split": Resolver._split,
    "Fn::If": Resolver._if,
    "Fn::Equals": Resolver._equals,
    "Fn::Not": lambda resolver, argument: not resolver.resolve(argument[0]),
    "Fn::And": lambda resolver, argument: all(resolver.resolve(item) for item in argument),
    "Fn::Or": lambda resolver, argument: any(resolver.resolve(item) for item in argument),
    "Condition": lambda resolver, name: resolver.condition(name),
    "Fn::GetAZs": lambda resolver, argument: [f"{REGION}a", f"{REGION}b", f"{REGION}c"],
    "Fn::FindInMap": Resolver._find_in_map,
    "Fn::ImportValue": _unsupported("Fn::ImportValue"),
}
