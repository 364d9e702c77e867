import myshell_sync
from scripted import ScriptedServer


def test_reply_from_scripted_server():
    def play(peer):
        peer.handshake()
        name, payload = peer.recv_event()
        assert name == "text_chat"
        peer.stream_reply(payload["reqId"], ["Hel", "lo"])
        peer.wait_closed()

    with ScriptedServer(play) as server:
        with myshell_sync.Myshell(server.base_url, captcha_delay=0, timeout=5) as client:
            chunks = list(client.generate("gpt-4", [{"role": "user", "content": "hi"}]))
    assert chunks == ["Hel", "lo"]
    assert not server.errors
