"""The Translate emulator on the embedded endpoint, through boto3's own `translate` client over a
real socket: pseudo-translations, the shipped language snapshot, terminology names, and errors
botocore raises as AWS's."""

from __future__ import annotations

import ast
import json
import urllib.request
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from conftest import REPO_ROOT

from local_stack.embedded_aws import EmbeddedAws
from local_stack.translate_emulator import (
    TERMINOLOGIES_VARIABLE,
    TranslateEmulator,
    configured_terminologies,
    snapshot_languages,
)

LANGUAGES_MODULE = REPO_ROOT / "layers" / "session_manager" / "python" / "session_manager" / "languages.py"


@pytest.fixture(scope="module")
def aws() -> Iterator[EmbeddedAws]:
    embedded = EmbeddedAws()
    embedded.start()
    try:
        yield embedded
    finally:
        embedded.stop()


@pytest.fixture
def translate(aws: EmbeddedAws) -> Any:
    # No retries: an error must be the emulator's first answer, not a retried one.
    return boto3.client(
        "translate",
        endpoint_url=aws.endpoint,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
        config=Config(retries={"max_attempts": 1, "mode": "standard"}),
    )


def test_translate_text_is_a_marked_pseudo_translation(translate):
    answer = translate.translate_text(Text="Hello world", SourceLanguageCode="en", TargetLanguageCode="es")
    assert answer["TranslatedText"] == "[es] Hello world"
    assert (answer["SourceLanguageCode"], answer["TargetLanguageCode"]) == ("en", "es")
    assert answer["AppliedTerminologies"] == []


def test_the_original_text_is_kept_exactly(translate):
    text = "  Línea 1\n\u03bb\u03cc\u03b3\u03bf\u03c2 «fin» 🙏  "  # Greek written escaped (ruff RUF001)
    answer = translate.translate_text(Text=text, SourceLanguageCode="es", TargetLanguageCode="el")
    assert answer["TranslatedText"].removeprefix("[el] ") == text


def test_regional_target_and_auto_source(translate):
    answer = translate.translate_text(Text="Bonjour", SourceLanguageCode="auto", TargetLanguageCode="fr-CA")
    assert answer["TranslatedText"] == "[fr-CA] Bonjour"
    assert answer["SourceLanguageCode"] == "en"


def test_terminology_names_are_applied_by_name(translate):
    answer = translate.translate_text(
        Text="Holy Spirit", SourceLanguageCode="en", TargetLanguageCode="de", TerminologyNames=["church-terms"]
    )
    assert answer["AppliedTerminologies"] == [{"Name": "church-terms", "Terms": []}]
    properties = translate.get_terminology(Name="church-terms", TerminologyDataFormat="CSV")["TerminologyProperties"]
    assert properties["Name"] == "church-terms"
    listed = translate.list_terminologies()["TerminologyPropertiesList"]
    assert "church-terms" in [item["Name"] for item in listed]


def test_two_terminologies_in_one_request_are_refused(translate):
    with pytest.raises(ClientError) as raised:
        translate.translate_text(
            Text="x", SourceLanguageCode="en", TargetLanguageCode="de", TerminologyNames=["a", "b"]
        )
    assert raised.value.response["Error"]["Code"] == "ValidationException"


def test_unsupported_pair_is_the_modelled_exception(translate):
    with pytest.raises(translate.exceptions.UnsupportedLanguagePairException) as raised:
        translate.translate_text(Text="Hello", SourceLanguageCode="en", TargetLanguageCode="xx")
    assert raised.value.response["Error"]["Message"] == "Unsupported language pair: en to xx."
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_same_source_and_target_is_an_unsupported_pair(translate):
    with pytest.raises(translate.exceptions.UnsupportedLanguagePairException):
        translate.translate_text(Text="Hello", SourceLanguageCode="en", TargetLanguageCode="en")


def test_text_over_10000_bytes_is_refused_and_10000_is_not(translate):
    # 5,000 two-byte characters: 10,000 bytes exactly, then one byte over.
    exactly = "é" * 5000
    answer = translate.translate_text(Text=exactly, SourceLanguageCode="fr", TargetLanguageCode="en")
    assert answer["TranslatedText"] == f"[en] {exactly}"
    with pytest.raises(translate.exceptions.TextSizeLimitExceededException) as raised:
        translate.translate_text(Text=exactly + "a", SourceLanguageCode="fr", TargetLanguageCode="en")
    assert "10001 bytes" in raised.value.response["Error"]["Message"]


def test_list_languages_is_the_shipped_snapshot_page_by_page(translate):
    # As session_manager/languages.py reads it: NextToken until there is none.
    codes, token, pages = [], None, 0
    while True:
        page = translate.list_languages(MaxResults=20, **({"NextToken": token} if token else {}))
        pages += 1
        assert len(page["Languages"]) <= 20
        codes += [language["LanguageCode"] for language in page["Languages"]]
        assert all(language["LanguageName"] for language in page["Languages"])
        token = page.get("NextToken")
        if not token:
            break
    assert pages > 1
    tree = ast.parse(LANGUAGES_MODULE.read_text(encoding="utf-8"))
    (snapshot,) = [
        node.value.args[0]
        for node in tree.body
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "TRANSLATE_SNAPSHOT"
    ]
    assert sorted(codes) == sorted(ast.literal_eval(snapshot))
    assert len(codes) == len(set(codes)) > 20


def test_an_unimplemented_operation_is_a_clear_error(translate):
    with pytest.raises(ClientError) as raised:
        translate.list_text_translation_jobs()
    assert "does not implement ListTextTranslationJobs" in raised.value.response["Error"]["Message"]


def test_other_services_still_reach_moto(aws):
    assert "TableNames" in aws.client("dynamodb").list_tables()


def test_configured_terminologies_restrict_the_names():
    names = configured_terminologies({TERMINOLOGIES_VARIABLE: "church-terms, book-names"})
    assert names == frozenset({"church-terms", "book-names"})
    assert configured_terminologies({}) is None
    emulator = TranslateEmulator(snapshot_languages(), names)
    body = {"Text": "x", "SourceLanguageCode": "en", "TargetLanguageCode": "es"}
    answer = emulator.translate_text({**body, "TerminologyNames": ["book-names"]})
    assert answer["AppliedTerminologies"] == [{"Name": "book-names", "Terms": []}]
    with pytest.raises(Exception, match="does not exist") as raised:
        emulator.translate_text({**body, "TerminologyNames": ["other"]})
    assert raised.value.code == "ResourceNotFoundException"  # type: ignore[attr-defined]
    listed = emulator.list_terminologies({})["TerminologyPropertiesList"]
    assert [item["Name"] for item in listed] == ["book-names", "church-terms"]


def test_usage_counts_requests_and_characters_translated(aws, translate):
    def usage():
        with urllib.request.urlopen(f"{aws.endpoint}/_local/translate-usage", timeout=10) as response:
            return json.loads(response.read())

    before = usage()
    translate.translate_text(Text="abc", SourceLanguageCode="en", TargetLanguageCode="es")
    translate.translate_text(Text="défg", SourceLanguageCode="en", TargetLanguageCode="fr")
    with pytest.raises(ClientError):
        translate.translate_text(Text="never billed", SourceLanguageCode="en", TargetLanguageCode="xx")
    after = usage()
    assert after["charactersTranslated"] - before["charactersTranslated"] == 7
    assert after["requests"]["TranslateText"] - before["requests"].get("TranslateText", 0) == 3
