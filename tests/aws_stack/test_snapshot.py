"""One snapshot per stack, asset hashes masked: any other change to the template shows up
in review as a snapshot diff (`pytest --snapshot-update` after checking it)."""

from __future__ import annotations

import json
import re

ASSET_HASH = re.compile(r"[0-9a-f]{64}")


def masked(template: dict) -> dict:
    text = json.dumps({k: v for k, v in template.items() if k != "_path"}, sort_keys=True)
    return json.loads(ASSET_HASH.sub("<asset-hash>", text))


def test_dev_template_snapshot(dev, snapshot):
    assert masked(dev[1]) == snapshot


def test_prod_template_snapshot(prod, snapshot):
    assert masked(prod[1]) == snapshot
