"""MyShell inside the tools people already use; each adapter has its own extra.

- ``myshell_sync.integrations.llm_plugin``: a plugin for simonw's ``llm``
  (``pip install "myshell_sync[llm]"``; found through the ``llm`` entry point).
- ``myshell_sync.integrations.langchain``: ``ChatMyShell``, a LangChain chat
  model (``pip install "myshell_sync[langchain]"``).
- ``myshell_sync.integrations.litellm``: ``MyshellLLM``, a litellm custom
  provider (``pip install "myshell_sync[litellm]"``).

This package imports none of those libraries: each adapter module imports its
own library, and only when it is imported. Every adapter uses the public
``myshell_sync`` client only.

The model names are prefixed by the transport they use, the same way in
every adapter: ``myshell/<name>`` (WebSocket), ``myshell-http/<name>`` (the
web app's HTTP API) and ``myshell-openapi/<name>`` (the key-based API).
"""

__all__ = ["PREFIXES"]

#: The transport -> the model-name prefix every adapter uses for it.
PREFIXES = {"websocket": "myshell", "http": "myshell-http", "openapi": "myshell-openapi"}
