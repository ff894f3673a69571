"""The console's words in Chinese (first) and English.

Each screen keeps its catalogue in `i18n/<screen>.yaml`: `key: {zh: ..., en: ...}`, with
`{name}` placeholders filled by `t(key, name=...)`. The catalogues are read once; a key in two
files or an entry lacking a language is an error at start, naming the file and the key. A key
missing at render time shows as `⟦key⟧` (and is logged): the browser tests fail on that mark.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from ..errors import CampaignEngineError

log = logging.getLogger(__name__)

LANGUAGES = ("zh", "en")
DEFAULT_LANGUAGE = "zh"
MISSING_MARK = "⟦{}⟧"
FOLDER = Path(__file__).parent / "i18n"


@functools.cache
def catalogue() -> dict[str, dict[str, str]]:
    entries: dict[str, dict[str, str]] = {}
    where: dict[str, str] = {}
    for path in sorted(FOLDER.glob("*.yaml")):
        data = YAML(typ="safe").load(path.read_text(encoding="utf-8")) or {}
        if not isinstance(data, dict):
            raise CampaignEngineError(f"{path.name}: a catalogue is a mapping of key -> {{zh, en}}")
        for key, texts in data.items():
            if key in entries:
                raise CampaignEngineError(f"{path.name}: key {key} is also in {where[key]}")
            if not isinstance(texts, dict) or any(not isinstance(texts.get(lang), str) for lang in LANGUAGES):
                raise CampaignEngineError(f"{path.name}: key {key} needs a text for each of {', '.join(LANGUAGES)}")
            entries[str(key)] = {lang: texts[lang] for lang in LANGUAGES}
            where[str(key)] = path.name
    return entries


def translate(key: str, lang: str, /, **values: Any) -> str:
    texts = catalogue().get(key)
    if texts is None:
        log.error("console: no text for key %s", key)
        return MISSING_MARK.format(key)
    text = texts.get(lang) or texts[DEFAULT_LANGUAGE]
    return text.format(**values) if values else text
