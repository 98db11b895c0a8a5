"""The evaluation corpus (conversation/eval/corpus/, by outside authors) read one way, for its runner
(conversation.evaluation) and for the intent model trained on its dev half (conversation.intent).

The split is by a hash of each item's id: the dev half may be read while fixing (and trained on); the test half is
only run to report its figure."""

import hashlib
import json
from pathlib import Path

from django.conf import settings

CORPUS = settings.BASE_DIR / "conversation" / "eval" / "corpus"


def half_of(item_id: str) -> str:
    """dev or test, fixed by the id: the split never depends on the order or the number of items."""
    return "dev" if int(hashlib.sha1(item_id.encode()).hexdigest(), 16) % 2 == 0 else "test"  # noqa: S324


def corpus(half: str = "all", folder: Path = CORPUS, pattern: str = "*.json") -> list[dict]:
    items = []
    paths = {path for one in pattern.split(",") for path in folder.glob(one.strip())}  # "a*.json,b*.json"
    for path in sorted(paths):
        for item in json.loads(path.read_text()):
            item["_kind"] = "conversation" if "turns" in item else "text"
            item["_file"] = path.name
            if half in ("all", half_of(item["id"])):
                items.append(item)
    return items
