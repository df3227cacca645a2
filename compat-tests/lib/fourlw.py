"""Four-letter words for the harness scripts (standard library only)."""

import socket


def four_letter(port, word, timeout=3.0, host="127.0.0.1"):
    """The reply to a four-letter word, or None if nothing answers."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.settimeout(timeout)
            s.sendall(word.encode())
            out = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                out += chunk
        return out.decode(errors="replace")
    except OSError:
        return None
