"""The local stack's CloudFormation YAML loader reads every template of this repository exactly
as cfn-lint's does, and refuses what CloudFormation refuses."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from cfnlint.decode.cfn_yaml import load as cfn_lint_load

from local_stack import cfn_yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = [REPO_ROOT / "template.yaml", *sorted((REPO_ROOT / "tests").rglob("*template*.yaml"))]


def _plain(value):
    """cfn-lint's nodes are dict and list subclasses carrying line marks: compare their contents."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda path: str(path.relative_to(REPO_ROOT)))
def test_reads_each_template_as_cfn_lint_does(template: Path):
    ours = cfn_yaml.load(str(template))
    assert ours == _plain(cfn_lint_load(str(template)))
    assert type(ours) is dict


def test_short_forms_become_long_forms(tmp_path: Path):
    source = tmp_path / "t.yaml"
    source.write_text(
        "A: !Ref Name\n"
        "B: !GetAtt Table.Arn.Extra\n"
        "C: !Sub ['${X}', {X: !Ref Y}]\n"
        "D: !If [IsProd, 1, !Ref AWS::NoValue]\n"
        "E: !Condition IsProd\n"
        "F: !GetAtt [Table, Arn]\n",
        encoding="utf-8",
    )
    assert cfn_yaml.load(str(source)) == {
        "A": {"Ref": "Name"},
        "B": {"Fn::GetAtt": ["Table", "Arn.Extra"]},
        "C": {"Fn::Sub": ["${X}", {"X": {"Ref": "Y"}}]},
        "D": {"Fn::If": ["IsProd", 1, {"Ref": "AWS::NoValue"}]},
        "E": {"Condition": "IsProd"},
        "F": {"Fn::GetAtt": ["Table", "Arn"]},
    }


def test_a_key_given_twice_is_refused_with_its_line(tmp_path: Path):
    source = tmp_path / "t.yaml"
    source.write_text("Resources:\n  Table: {Type: A}\n  Table: {Type: B}\n", encoding="utf-8")
    with pytest.raises(yaml.YAMLError, match='duplicate key "Table" at line 3'):
        cfn_yaml.load(str(source))


def test_python_tags_are_not_constructed(tmp_path: Path):
    source = tmp_path / "t.yaml"
    source.write_text("A: !!python/object/apply:os.system ['true']\n", encoding="utf-8")
    with pytest.raises(yaml.YAMLError):
        cfn_yaml.load(str(source))
