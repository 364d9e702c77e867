"""myshell_sync: a synchronous, thread-based SDK for chatting with MyShell.ai bots.

from myshell_sync import Myshell

with Myshell() as client:
    for chunk in client.generate("gpt-4", [{"role": "user", "content": "Hi"}]):
        print(chunk, end="", flush=True)
"""

import logging as _logging

from . import _exceptions
from ._client import Energy, Myshell, generate
from ._config import Timeout
from ._conversation import Conversation
from ._exceptions import *  # noqa: F403  (the error tree, listed in _exceptions.__all__)
from ._models import format_prompt, http_models, models, openapi_models
from ._signing import (
    generate_header_timestamp,
    generate_signature,
    generate_timestamp,
    generate_visitor_id,
)
from ._stream import Reply, Stream, Timings
from ._version import __version__
from ._web import to_sse

__all__ = [
    "__version__",
    "Myshell",
    "Stream",
    "Reply",
    "Timings",
    "Energy",
    "Timeout",
    "Conversation",
    "generate",
    "models",
    "http_models",
    "openapi_models",
    "format_prompt",
    "to_sse",
    "generate_signature",
    "generate_timestamp",
    "generate_header_timestamp",
    "generate_visitor_id",
    *_exceptions.__all__,
]

_logging.getLogger("myshell_sync").addHandler(_logging.NullHandler())

for _name in __all__:
    _obj = globals()[_name]
    if hasattr(_obj, "__module__") and getattr(_obj, "__module__", "").startswith("myshell_sync._"):
        try:
            _obj.__module__ = "myshell_sync"
        except (AttributeError, TypeError):
            pass
del _name, _obj
