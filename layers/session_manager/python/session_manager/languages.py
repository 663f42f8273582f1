"""Which languages a session can be spoken in and listened to (requirement 2).

A source language must be one Amazon Translate supports; a target language also needs an
Amazon Polly neural voice. Both lists start from a snapshot shipped here and are refreshed once
per execution environment from the live APIs where they answer (Translate has no emulator).
"""

from __future__ import annotations

import threading

import boto3
from aws_lambda_powertools import Logger
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

logger = Logger(child=True)

# Amazon Translate's ISO 639-1 languages (ListLanguages, regional variants folded).
TRANSLATE_SNAPSHOT = frozenset(
    [
        "af",
        "am",
        "ar",
        "az",
        "bg",
        "bn",
        "bs",
        "ca",
        "cs",
        "cy",
        "da",
        "de",
        "el",
        "en",
        "es",
        "et",
        "fa",
        "fi",
        "fr",
        "ga",
        "gu",
        "ha",
        "he",
        "hi",
        "hr",
        "ht",
        "hu",
        "hy",
        "id",
        "is",
        "it",
        "ja",
        "ka",
        "kk",
        "kn",
        "ko",
        "lt",
        "lv",
        "mk",
        "ml",
        "mn",
        "mr",
        "ms",
        "mt",
        "nl",
        "no",
        "pa",
        "pl",
        "ps",
        "pt",
        "ro",
        "ru",
        "si",
        "sk",
        "sl",
        "so",
        "sq",
        "sr",
        "sv",
        "sw",
        "ta",
        "te",
        "th",
        "tl",
        "tr",
        "uk",
        "ur",
        "uz",
        "vi",
        "zh",
    ]
)
# Languages with at least one Polly neural voice (DescribeVoices Engine=neural).
NEURAL_VOICE_SNAPSHOT = frozenset(
    [
        "ar",
        "ca",
        "cs",
        "da",
        "de",
        "en",
        "es",
        "fi",
        "fr",
        "hi",
        "it",
        "ja",
        "ko",
        "nl",
        "no",
        "pl",
        "pt",
        "sv",
        "tr",
        "zh",
    ]
)

# Polly speaks in language tags that are not ISO 639-1 for a few languages.
_POLLY_TO_ISO = {"arb": "ar", "cmn": "zh", "yue": "zh", "nb": "no"}
_DISCOVERY_CONFIG = Config(retries={"mode": "standard", "max_attempts": 1}, connect_timeout=1, read_timeout=2)


class LanguageCatalog:
    def __init__(self, translate_client=None, polly_client=None) -> None:
        self._translate = translate_client
        self._polly = polly_client
        self._lock = threading.Lock()
        self._translate_codes: frozenset[str] | None = None
        self._neural_codes: frozenset[str] | None = None

    def is_translatable(self, code: str) -> bool:
        return code in self._translatable()

    def is_speakable(self, code: str) -> bool:
        """Translate can produce it and a Polly neural voice can read it out."""
        return code in self._translatable() and code in self._neural()

    def _translatable(self) -> frozenset[str]:
        with self._lock:
            if self._translate_codes is None:
                self._translate_codes = self._discover_translate() or TRANSLATE_SNAPSHOT
            return self._translate_codes

    def _neural(self) -> frozenset[str]:
        with self._lock:
            if self._neural_codes is None:
                self._neural_codes = self._discover_neural_voices() or NEURAL_VOICE_SNAPSHOT
            return self._neural_codes

    def _discover_translate(self) -> frozenset[str] | None:
        try:
            client = self._translate or boto3.client("translate", config=_DISCOVERY_CONFIG)
            codes: set[str] = set()
            paginator_token = None
            while True:
                kwargs = {"NextToken": paginator_token} if paginator_token else {}
                page = client.list_languages(**kwargs)
                codes.update(lang["LanguageCode"].split("-")[0] for lang in page.get("Languages", []))
                paginator_token = page.get("NextToken")
                if not paginator_token:
                    break
        except (BotoCoreError, ClientError) as error:
            logger.info("using Translate language snapshot", extra={"reason": type(error).__name__})
            return None
        codes = {code for code in codes if len(code) == 2}
        return frozenset(codes) or None

    def _discover_neural_voices(self) -> frozenset[str] | None:
        try:
            client = self._polly or boto3.client("polly", config=_DISCOVERY_CONFIG)
            voices = client.describe_voices(Engine="neural").get("Voices", [])
        except (BotoCoreError, ClientError) as error:
            logger.info("using Polly neural voice snapshot", extra={"reason": type(error).__name__})
            return None
        # An answer that does not say which engines a voice supports cannot tell neural voices
        # apart (emulators answer like that); trust the snapshot then.
        if not voices or any("SupportedEngines" not in voice for voice in voices):
            return None
        codes = set()
        for voice in voices:
            if "neural" not in voice["SupportedEngines"]:
                continue
            for tag in [voice["LanguageCode"], *voice.get("AdditionalLanguageCodes", [])]:
                base = tag.split("-")[0]
                codes.add(_POLLY_TO_ISO.get(base, base))
        return frozenset(code for code in codes if len(code) == 2) or None
