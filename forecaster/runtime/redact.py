"""Masking credentials in text that is printed, logged or returned (URIs, error messages).

MLflow and database drivers put the URI they were given, `user:password@host` included, into
their error text; anything that shows such text to a user or a log goes through `mask_credentials`.
"""

from __future__ import annotations

import re

# scheme://user:password@host -> scheme://user:***@host. The password runs to the last '@' before
# the path (unencoded '@' in passwords happens); over-masking is the safe failure.
_USERINFO = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.-]*://[^:/?#@\s]*):[^/\s]*@")
# password=..., token=... in query strings, DSNs ("host=db password=x") and key=value messages.
_SECRET_PARAM = re.compile(
    r"(?P<key>\b(?:password|passwd|pwd|secret|token|access_token|api_key|apikey|access_key)=)[^&\s'\";,]+",
    re.IGNORECASE,
)


def mask_credentials(text: object) -> str:
    """`text` with passwords in URIs and secret parameters replaced by `***`."""
    masked = _USERINFO.sub(r"\g<head>:***@", str(text))
    return _SECRET_PARAM.sub(r"\g<key>***", masked)
