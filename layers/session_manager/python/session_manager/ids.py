"""Human-readable session ids: ``adjective-noun-NNN`` (requirement 3)."""

from __future__ import annotations

import functools
import secrets
from dataclasses import dataclass
from pathlib import Path

WORDLISTS = Path(__file__).parent / "wordlists"


def _read_words(name: str) -> tuple[str, ...]:
    lines = (WORDLISTS / name).read_text(encoding="utf-8").splitlines()
    return tuple(word.strip() for word in lines if word.strip())


@dataclass(frozen=True)
class SessionIdGenerator:
    adjectives: tuple[str, ...]
    nouns: tuple[str, ...]
    blacklist: tuple[str, ...]

    @classmethod
    @functools.lru_cache(maxsize=1)
    def from_wordlists(cls) -> SessionIdGenerator:
        """Loaded once per execution environment, from the files shipped in the layer."""
        return cls(_read_words("adjectives.txt"), _read_words("nouns.txt"), _read_words("blacklist.txt"))

    def is_clean(self, session_id: str) -> bool:
        """No blacklisted word anywhere in the id, including across its hyphens."""
        squeezed = session_id.replace("-", "")
        return not any(bad in session_id or bad in squeezed for bad in self.blacklist)

    def generate(self) -> str:
        """A random clean id. Raises if none is found quickly: that is a word-list defect."""
        for _ in range(1000):
            candidate = f"{secrets.choice(self.adjectives)}-{secrets.choice(self.nouns)}-{100 + secrets.randbelow(900)}"
            if self.is_clean(candidate):
                return candidate
        raise RuntimeError("the word lists produce no id that passes the blacklist")
