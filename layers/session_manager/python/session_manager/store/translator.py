"""Amazon Translate behind the translator port: one TranslateText per target language, in
parallel, with the stack's custom terminologies, and a small per-container cache (a speaker
repeating a line, "Amen", or two sessions of one church sharing a container)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor

import boto3
from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import MetricUnit
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from session_manager.observability import metrics

logger = Logger(child=True)

TRANSLATE_CONFIG = Config(
    retries={"mode": "standard", "total_max_attempts": 3}, connect_timeout=1, read_timeout=3, max_pool_connections=16
)
CACHE_LINES = 512


class AmazonTranslator:
    def __init__(self, terminology_names: Iterable[str] = (), client=None, *, concurrency: int = 8) -> None:
        self.terminology_names = [name for name in terminology_names if name]
        self._client = client
        self.concurrency = concurrency
        self._cache: OrderedDict[tuple[str, str, str], str] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def client(self):
        if self._client is None:
            self._client = boto3.client("translate", config=TRANSLATE_CONFIG)
        return self._client

    def translate(self, text: str, source_language: str, target_languages: Iterable[str]) -> Mapping[str, str | None]:
        targets = list(target_languages)
        if not targets:
            return {}
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(targets))) as pool:
            results = list(pool.map(lambda target: self._one(text, source_language, target), targets))
        return dict(zip(targets, results, strict=True))

    def _one(self, text: str, source: str, target: str) -> str | None:
        key = (text, source, target)
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        request = {"Text": text, "SourceLanguageCode": source, "TargetLanguageCode": target}
        if self.terminology_names:
            request["TerminologyNames"] = self.terminology_names
        try:
            translated = self.client.translate_text(**request)["TranslatedText"]
        except (ClientError, BotoCoreError) as error:
            code = (
                error.response.get("Error", {}).get("Code") if isinstance(error, ClientError) else type(error).__name__
            )
            logger.warning("translation failed", extra={"targetLanguage": target, "errorCode": code})
            return None
        metrics.add_metric(name="TranslatedCharacters", unit=MetricUnit.Count, value=len(text))
        with self._lock:
            self._cache[key] = translated
            while len(self._cache) > CACHE_LINES:
                self._cache.popitem(last=False)
        return translated
