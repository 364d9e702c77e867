"""Tunables and protocol constants, each with the reason for its value."""

from __future__ import annotations

# The public service; the WebSocket URL is derived from it.
DEFAULT_BASE_URL = "https://api.myshell.ai"
# Engine.IO v4, websocket transport only, engine path /ws/ (PROTOCOL.md 1.1).
WS_PATH = "/ws/?EIO=4&transport=websocket"
# Every chat frame is in this Socket.IO namespace (PROTOCOL.md 1.1).
NAMESPACE = "/chat"
# Constant sent by the official web client in every text_chat (PROTOCOL.md 1.3).
SOURCE_FROM = "myshellWebsite"
# Signature version and the salt gpt4free used (PROTOCOL.md 4.2).
SIGNATURE_VERSION = "v1.0.0"
SIGNATURE_SECRET = "8@VXGK3kKHr!u2gA"
# The browser gpt4free impersonated; used when no user_agent is given.
DEFAULT_USER_AGENT = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/111.0.0.0 Safari/537.36"
)
# Environment variable the token falls back to.
TOKEN_ENV = "MYSHELL_TOKEN"

# gpt4free found 5 s between connect and the first request avoided
# need_verify_captcha (PROTOCOL.md 1.2 step 4).
DEFAULT_CAPTCHA_DELAY = 5.0
# Timeout defaults (seconds): a handshake is quick; a bot may think for a while
# before its first token; 30 s of silence mid-reply means something is wrong.
DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_FIRST_CHUNK_TIMEOUT = 60.0
DEFAULT_IDLE_TIMEOUT = 30.0
# After a text_stream with isFinal, how long to wait for message_replied before
# ending the reply anyway.
FINAL_GRACE = 1.0
# Longest single wait of a consumer, so Ctrl-C and close() land quickly.
WAIT_SLICE = 0.2
# Connections unused this long are closed (seconds).
DEFAULT_IDLE_CLOSE = 60.0
# How long close() waits for the server's close frame and for threads to end.
DEFAULT_CLOSE_TIMEOUT = 5.0

# -- HTTP transport (PROTOCOL.md sections 2 and 3) ---------------------------
CHAT_SEND_PATH = "/v1/bot/chat/send_message"
ENERGY_PATH = "/user/getUserEnergyInfo"
# Header that routes a request to the Go backend that serves chat.
SERVICE_NAME = "organics-api"
# The web client's version header (build S5-S12).
CLIENT_VERSION = "v1.6.4"
# WEB_CHAT_NORMAL: what the web client sends for ordinary text chat.
CONVERSATION_SCENARIO = 4
# A server-sent event or WebSocket frame larger than this fails the reply.
DEFAULT_MAX_EVENT_SIZE = 16 * 1024 * 1024

# -- the key-based API (PROTOCOL.md section 8) --------------------------------
DEFAULT_OPENAPI_URL = "https://openapi.myshell.ai"
OPENAPI_RUN_PATH = "/public/v1/widget/run"
OPENAPI_KEY_HEADER = "x-myshell-openapi-key"
# Environment variable the API key falls back to (the one MyShell's own framework reads).
API_KEY_ENV = "MYSHELL_API_KEY"
# The header carrying a security token from a captcha solved in a browser.
SECURITY_TOKEN_HEADER = "myshell-security-token"
