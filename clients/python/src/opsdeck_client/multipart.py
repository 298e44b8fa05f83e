"""A multipart/form-data body built here, in full, so that the bytes signed are the bytes sent."""

from __future__ import annotations

import uuid


def quote_filename(name: str) -> str:
    """A filename for a Content-Disposition parameter, escaped as browsers do (WHATWG HTML):
    a quote or a line break cannot end the header early."""
    return name.replace("\\", "\\\\").replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")


def file_body(
    field: str, filename: str, content: bytes, *, content_type: str = "application/octet-stream", boundary: str = ""
) -> tuple[bytes, str]:
    """(body, Content-Type header) of a form holding one file part."""
    boundary = boundary or f"opsdeck-{uuid.uuid4().hex}"
    head = (
        f"--{boundary}\r\n"
        f'Content-Disposition: form-data; name="{field}"; filename="{quote_filename(filename)}"\r\n'
        f"Content-Type: {content_type}\r\n\r\n"
    ).encode()
    return head + content + f"\r\n--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"
