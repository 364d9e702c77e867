"""OpenAI's chat completions API, answered by MyShell.

In process, the official SDK's shape::

    from myshell_sync.openai_api import OpenAI

    with OpenAI() as client:                      # or OpenAI(myshell_client)
        reply = client.chat.completions.create(model="gpt-4o-mini", messages=[...])
        print(reply.choices[0].message.content)

As a server the official SDKs talk to: ``create_app(client)`` is a WSGI
application; ``myshell-sync serve`` runs it (extra ``server``).
"""

from ._client import ChunkStream, OpenAI
from ._objects import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionMessage,
    Choice,
    ChoiceDelta,
    ChunkChoice,
    CompletionUsage,
    Model,
    ModelList,
)
from ._translate import estimate_tokens
from ._wsgi import API_KEYS_ENV, create_app

__all__ = [
    "OpenAI",
    "ChunkStream",
    "create_app",
    "API_KEYS_ENV",
    "estimate_tokens",
    "ChatCompletion",
    "ChatCompletionChunk",
    "ChatCompletionMessage",
    "Choice",
    "ChoiceDelta",
    "ChunkChoice",
    "CompletionUsage",
    "Model",
    "ModelList",
]
