"""Assertions the API tests share: a PNG answer, and a one-sentence error answer."""

from __future__ import annotations

import io

from PIL import Image

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png(resp) -> Image.Image:
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == "image/png"
    assert resp.content.startswith(PNG_SIGNATURE)
    return Image.open(io.BytesIO(resp.content))



def one_sentence(resp, status: int) -> str:
    assert resp.status_code == status, resp.text
    detail = resp.json()["detail"]
    assert isinstance(detail, str) and detail and "Traceback" not in detail
    return detail
