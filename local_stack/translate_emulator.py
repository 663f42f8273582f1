"""Amazon Translate on the embedded endpoint: a WSGI middleware in front of moto's server (which
has no Translate) answering Translate's JSON protocol, so the production code's boto3 `translate`
client runs unchanged against AWS_ENDPOINT_URL.

Translations are pseudo-translations, marked so a tester sees at a glance which language a line
was "translated" to and that no real translation happened: `[es] Hello world` is "Hello world"
translated to Spanish. The text itself is never changed, so stripping the `[code] ` prefix gives
the original back exactly.

Languages are the project's shipped snapshot (TRANSLATE_SNAPSHOT in
layers/session_manager/python/session_manager/languages.py), read from that file without
importing the domain package.

Custom terminologies: with LOCAL_TRANSLATE_TERMINOLOGIES unset, every terminology name exists
(a template parameter naming one works without setup); set to a comma-separated list of names,
only those exist and any other is a ResourceNotFoundException, as on AWS. Terminologies are named
in the answer (AppliedTerminologies) but apply no terms.

Faults: the fault knob (local_stack/faults.py, `make fault FAULT="translate error rate=0.5"`)
sits in front of this emulator on the same endpoint and answers for it, in Translate's error shapes
(InternalServerException, ServiceUnavailableException, TooManyRequestsException) or late; the
emulator itself always answers truthfully, so clearing the fault is all a recovery takes.

docs/local-stack.md, "Amazon Translate and the SQS event source", says where this differs from AWS.
"""

from __future__ import annotations

import ast
import json
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from local_stack.intrinsics import ACCOUNT_ID, REGION

TARGET_PREFIX = "AWSShineFrontendService_20170701."
# What Translate was asked so far, for `make bench` (characters are what AWS bills).
USAGE_PATH = "/_local/translate-usage"
TERMINOLOGIES_VARIABLE = "LOCAL_TRANSLATE_TERMINOLOGIES"
MAX_TEXT_BYTES = 10_000
AUTO_DETECTED_SOURCE = "en"  # "auto" has no Comprehend behind it locally
_SNAPSHOT_FILE = (
    Path(__file__).resolve().parents[1] / "layers" / "session_manager" / "python" / "session_manager" / "languages.py"
)
_CONTENT_TYPE = "application/x-amz-json-1.1"
_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 500: "Internal Server Error"}

# English names for ListLanguages; a code missing here is named by its code.
LANGUAGE_NAMES = {
    "af": "Afrikaans", "am": "Amharic", "ar": "Arabic", "az": "Azerbaijani", "bg": "Bulgarian",
    "bn": "Bengali", "bs": "Bosnian", "ca": "Catalan", "cs": "Czech", "cy": "Welsh", "da": "Danish",
    "de": "German", "el": "Greek", "en": "English", "es": "Spanish", "et": "Estonian", "fa": "Farsi (Persian)",
    "fi": "Finnish", "fr": "French", "ga": "Irish", "gu": "Gujarati", "ha": "Hausa", "he": "Hebrew",
    "hi": "Hindi", "hr": "Croatian", "ht": "Haitian Creole", "hu": "Hungarian", "hy": "Armenian",
    "id": "Indonesian", "is": "Icelandic", "it": "Italian", "ja": "Japanese", "ka": "Georgian",
    "kk": "Kazakh", "kn": "Kannada", "ko": "Korean", "lt": "Lithuanian", "lv": "Latvian",
    "mk": "Macedonian", "ml": "Malayalam", "mn": "Mongolian", "mr": "Marathi", "ms": "Malay",
    "mt": "Maltese", "nl": "Dutch", "no": "Norwegian (Bokmål)", "pa": "Punjabi", "pl": "Polish",
    "ps": "Pashto", "pt": "Portuguese (Brazil)", "ro": "Romanian", "ru": "Russian", "si": "Sinhala",
    "sk": "Slovak", "sl": "Slovenian", "so": "Somali", "sq": "Albanian", "sr": "Serbian", "sv": "Swedish",
    "sw": "Swahili", "ta": "Tamil", "te": "Telugu", "th": "Thai", "tl": "Filipino, Tagalog",
    "tr": "Turkish", "uk": "Ukrainian", "ur": "Urdu", "uz": "Uzbek", "vi": "Vietnamese",
    "zh": "Chinese (Simplified)",
}  # fmt: skip


class TranslateError(Exception):
    """An error answer in Translate's shape; botocore raises it as ClientError with this code."""

    def __init__(self, code: str, message: str, status: int = 400, **fields: Any) -> None:
        super().__init__(message)
        self.code = code
        self.status = status
        self.fields = fields


def snapshot_languages(source: Path = _SNAPSHOT_FILE) -> tuple[str, ...]:
    """TRANSLATE_SNAPSHOT's codes, read from the module's source (its package needs the Lambda
    layer's imports, which the local stack's own process should not take on)."""
    tree = ast.parse(source.read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "TRANSLATE_SNAPSHOT" for t in node.targets):
            value = node.value
            if isinstance(value, ast.Call) and value.args:  # frozenset([...])
                value = value.args[0]
            codes = ast.literal_eval(value)
            return tuple(sorted(str(code) for code in codes))
    raise RuntimeError(f"{source} has no TRANSLATE_SNAPSHOT: the Translate emulator has no languages")


def pseudo_translation(text: str, target_language: str) -> str:
    return f"[{target_language}] {text}"


def configured_terminologies(environ: Mapping[str, str] = os.environ) -> frozenset[str] | None:
    """None: every name exists."""
    raw = environ.get(TERMINOLOGIES_VARIABLE)
    if raw is None or not raw.strip():
        return None
    return frozenset(name.strip() for name in raw.split(",") if name.strip())


class TranslateEmulator:
    def __init__(self, languages: Iterable[str], terminologies: frozenset[str] | None = None) -> None:
        self.languages = tuple(languages)
        self._known = frozenset(code.lower() for code in self.languages)
        self.terminologies = terminologies
        self._used_terminologies: dict[str, float] = {}
        self._lock = threading.Lock()
        self.characters_translated = 0
        self.requests: Counter[str] = Counter()

    def usage(self) -> dict[str, Any]:
        with self._lock:
            return {"requests": dict(self.requests), "charactersTranslated": self.characters_translated}

    def handle(self, operation: str, body: Mapping[str, Any]) -> dict[str, Any]:
        with self._lock:
            self.requests[operation] += 1
        handler = self._operations().get(operation)
        if handler is None:
            raise TranslateError(
                "InvalidRequestException", f"the local Translate emulator does not implement {operation}"
            )
        return handler(body)

    def _operations(self) -> dict[str, Callable[[Mapping[str, Any]], dict[str, Any]]]:
        return {
            "TranslateText": self.translate_text,
            "ListLanguages": self.list_languages,
            "ListTerminologies": self.list_terminologies,
            "GetTerminology": self.get_terminology,
        }

    def _language(self, body: Mapping[str, Any], field: str) -> str:
        value = body.get(field)
        if not isinstance(value, str) or not 2 <= len(value) <= 5:
            raise TranslateError(
                "ValidationException", f"1 validation error detected: Value at '{field}' failed to satisfy constraint"
            )
        return value

    def _supported(self, code: str) -> bool:
        return code.lower() in self._known or code.split("-")[0].lower() in self._known

    def translate_text(self, body: Mapping[str, Any]) -> dict[str, Any]:
        text = body.get("Text")
        if not isinstance(text, str) or not text:
            raise TranslateError(
                "ValidationException", "1 validation error detected: Value at 'text' failed to satisfy constraint"
            )
        source = self._language(body, "SourceLanguageCode")
        target = self._language(body, "TargetLanguageCode")
        size = len(text.encode("utf-8"))
        if size > MAX_TEXT_BYTES:
            raise TranslateError(
                "TextSizeLimitExceededException",
                f"Input text size exceeds limit. Max length of request text allowed is {MAX_TEXT_BYTES} bytes "
                f"while in this request the text size is {size} bytes",
            )
        if source == "auto":
            source = AUTO_DETECTED_SOURCE
        if not self._supported(source) or not self._supported(target) or source.lower() == target.lower():
            raise TranslateError(
                "UnsupportedLanguagePairException",
                f"Unsupported language pair: {source} to {target}.",
                SourceLanguageCode=source,
                TargetLanguageCode=target,
            )
        names = body.get("TerminologyNames") or []
        if not isinstance(names, list) or not all(isinstance(name, str) and name for name in names):
            raise TranslateError("ValidationException", "TerminologyNames must be a list of names")
        if len(names) > 1:
            raise TranslateError("ValidationException", "You can use 1 terminology list at most in a request")
        for name in names:
            self._require_terminology(name)
        with self._lock:
            self.characters_translated += len(text)
        return {
            "TranslatedText": pseudo_translation(text, target),
            "SourceLanguageCode": source,
            "TargetLanguageCode": target,
            "AppliedTerminologies": [{"Name": name, "Terms": []} for name in names],
        }

    def list_languages(self, body: Mapping[str, Any]) -> dict[str, Any]:
        max_results = body.get("MaxResults", 500)
        if not isinstance(max_results, int) or not 1 <= max_results <= 500:
            raise TranslateError("ValidationException", "MaxResults must be between 1 and 500")
        start = 0
        if body.get("NextToken"):
            token = str(body["NextToken"])
            if not token.isdigit() or int(token) >= len(self.languages):
                raise TranslateError("InvalidRequestException", "Invalid NextToken")
            start = int(token)
        page = self.languages[start : start + max_results]
        answer: dict[str, Any] = {
            "Languages": [{"LanguageName": LANGUAGE_NAMES.get(code, code), "LanguageCode": code} for code in page],
            "DisplayLanguageCode": str(body.get("DisplayLanguageCode") or "en"),
        }
        if start + max_results < len(self.languages):
            answer["NextToken"] = str(start + max_results)
        return answer

    def _require_terminology(self, name: str) -> None:
        if self.terminologies is not None and name not in self.terminologies:
            raise TranslateError(
                "ResourceNotFoundException",
                f"The resource {name} does not exist (the local stack knows: {', '.join(sorted(self.terminologies))})",
            )
        with self._lock:
            self._used_terminologies.setdefault(name, time.time())

    def _properties(self, name: str, created_at: float) -> dict[str, Any]:
        return {
            "Name": name,
            "Description": "Local stack terminology: named in answers, applies no terms",
            "Arn": f"arn:aws:translate:{REGION}:{ACCOUNT_ID}:terminology/{name}/LATEST",
            "SourceLanguageCode": "en",
            "TargetLanguageCodes": [code for code in self.languages if code != "en"],
            "SizeBytes": 0,
            "TermCount": 0,
            "CreatedAt": created_at,
            "LastUpdatedAt": created_at,
            "Format": "CSV",
            "Directionality": "UNI",
        }

    def list_terminologies(self, body: Mapping[str, Any]) -> dict[str, Any]:
        with self._lock:
            seen = dict(self._used_terminologies)
        names = sorted(self.terminologies) if self.terminologies is not None else sorted(seen)
        now = time.time()
        return {"TerminologyPropertiesList": [self._properties(name, seen.get(name, now)) for name in names]}

    def get_terminology(self, body: Mapping[str, Any]) -> dict[str, Any]:
        name = body.get("Name")
        if not isinstance(name, str) or not name:
            raise TranslateError("ValidationException", "Name is required")
        self._require_terminology(name)
        with self._lock:
            created_at = self._used_terminologies[name]
        return {
            "TerminologyProperties": self._properties(name, created_at),
            "TerminologyDataLocation": {"RepositoryType": "S3", "Location": f"local://terminology/{name}"},
        }


class TranslateMiddleware:
    """WSGI middleware: Translate requests (by X-Amz-Target) are answered here; the rest go on
    to moto."""

    def __init__(self, app: Callable[..., Any], emulator: TranslateEmulator) -> None:
        self.app = app
        self.emulator = emulator

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        target = str(environ.get("HTTP_X_AMZ_TARGET", ""))
        if environ.get("PATH_INFO") == USAGE_PATH and environ.get("REQUEST_METHOD") == "GET":
            return self._answer(start_response, 200, self.emulator.usage(), "application/json")
        if not target.startswith(TARGET_PREFIX):
            return self.app(environ, start_response)
        length = int(environ.get("CONTENT_LENGTH") or 0)
        raw = environ["wsgi.input"].read(length) if length else b""
        status = 200
        try:
            body = json.loads(raw or b"{}")
            if not isinstance(body, dict):
                raise TranslateError("SerializationException", "the request body is not a JSON object")
            answer = self.emulator.handle(target[len(TARGET_PREFIX) :], body)
        except ValueError:
            status, answer = 400, {"__type": "SerializationException", "message": "the request body is not JSON"}
        except TranslateError as error:
            status = error.status
            answer = {"__type": error.code, "message": str(error), **error.fields}
        return self._answer(start_response, status, answer, _CONTENT_TYPE)

    @staticmethod
    def _answer(start_response: Callable[..., Any], status: int, answer: Any, content_type: str) -> list[bytes]:
        payload = json.dumps(answer).encode()
        start_response(
            f"{status} {_REASONS.get(status, 'Error')}",
            [("Content-Type", content_type), ("Content-Length", str(len(payload)))],
        )
        return [payload]


def install_on_moto(moto_server: Any, emulator: TranslateEmulator | None = None) -> TranslateEmulator:
    """Put the emulator in front of a started ThreadedMotoServer (werkzeug reads `app` per request)."""
    wsgi_server = moto_server._server
    if isinstance(wsgi_server.app, TranslateMiddleware):
        return wsgi_server.app.emulator
    emulator = emulator or TranslateEmulator(snapshot_languages(), configured_terminologies())
    wsgi_server.app = TranslateMiddleware(wsgi_server.app, emulator)
    return emulator
