"""Write syscalls per connection (`write_calls` in /api/connections):
corking (many replies and publications of one loop iteration leave in one
write) and a subscriber whose socket is full costs no syscall per message
(it is written again only when the socket becomes writable).

Counts of syscalls, not timings: each bound is far below the number of
messages, which is what a write per message would cost."""

import json
import unittest

from wstrace_harness import (IO_TIMEOUT, OP_PING, OP_TEXT, Deadline, Positions, RawClient,
                             WstraceServer, encode_frame, raw_subscribe, stalled_subscriber,
                             wait_until)


def peer_of(client):
    host, port = client.sock.getsockname()[:2]
    return f"{host}:{port}"


def row_of(srv, client):
    """The /api/connections row of a raw client (found by its address)."""
    peer = peer_of(client)
    for c in srv.connections():
        if c["peer"] == peer:
            return c
    raise AssertionError(f"no /api/connections row for {peer}")


def wait_row(srv, client, pred, what):
    def check():
        r = row_of(srv, client)
        return r if pred(r) else None
    return wait_until(check, what=what)


class Corking(unittest.TestCase):

    def test_200_commands_in_one_tcp_write_are_answered_with_few_writes(self):
        with WstraceServer(threads=2) as srv:
            c = RawClient(srv.port)
            self.addCleanup(c.close)
            c.handshake()
            pos = Positions()
            pos.subscribed(raw_subscribe(c, "cork"))
            before = row_of(srv, c)

            # 100 publications to its own channel and 100 Pings, one TCP write.
            n = 100
            data = b"".join(
                encode_frame(OP_TEXT, json.dumps({"type": "Message", "channel": "cork",
                                                  "content": f"m{i}"}))
                + encode_frame(OP_TEXT, json.dumps({"type": "Ping", "id": i}))
                for i in range(n))
            c.send_raw(data)
            pongs, messages = [], []
            d = Deadline(IO_TIMEOUT, f"not all of the {2 * n} replies and messages came")
            while len(pongs) + len(messages) < 2 * n:
                m = c.read_json(deadline=d)
                if m["type"] == "Pong":
                    pongs.append(m["id"])
                else:
                    messages.append(pos.message(m, "cork")["content"])
            self.assertEqual(pongs, list(range(n)))
            self.assertEqual(messages, [f"m{i}" for i in range(n)])

            after = row_of(srv, c)
            self.assertEqual(after["messages_sent"] - before["messages_sent"], 2 * n)
            writes = after["write_calls"] - before["write_calls"]
            print(f"\ncorking: {2 * n} frames in {writes} write calls")
            self.assertGreaterEqual(writes, 1)
            self.assertLess(writes, 10, f"{writes} write calls for {2 * n} frames: not corked")


class BlockedSubscriber(unittest.TestCase):

    def test_full_socket_gets_no_write_per_message_then_everything_in_order(self):
        # Far over what is queued here: the subscriber is never dropped.
        with WstraceServer("--max-backpressure", "16MiB", "--heartbeat-interval", "0",
                           threads=2) as srv:
            slow = stalled_subscriber(self, srv.port, "jam")
            pub = RawClient(srv.port)  # not subscribed: it gets no copies
            self.addCleanup(pub.close)
            pub.handshake()
            base = row_of(srv, slow)["messages_sent"]

            # The subscriber does not read: publish until its socket is full
            # and the server has queued a good amount (the kernel may still
            # grow the socket's send buffer a little; bounded: 5000 x 1 KB,
            # and in time).
            filler = "f" * 1000
            sent = 0
            fill = Deadline(60, "the subscriber's socket never filled")
            while row_of(srv, slow)["queued_bytes"] < 64 * 1024:
                self.assertLess(sent, 5000, "the subscriber's socket never filled "
                                "(5000 messages of 1 KB, nothing queued)")
                fill.left(f"({sent} messages of 1 KB sent, "
                          f"{row_of(srv, slow)['queued_bytes']} bytes queued)")
                for _ in range(20):
                    pub.send_json({"type": "Message", "channel": "jam",
                                   "content": f"{sent}:{filler}"})
                    sent += 1
            filled = sent
            before = wait_row(srv, slow, lambda r: r["messages_sent"] == base + filled,
                              "the filler messages to be handled")

            # N more while it is blocked (about 40 KB: under --max-backpressure),
            # each in a loop iteration of its own: the publisher waits for the
            # answer to a Ping sent after each (a burst would be delivered as
            # one run, one write even for a subscriber that reads).
            n = 500
            for i in range(n):
                pub.send_raw(encode_frame(OP_TEXT, json.dumps(
                    {"type": "Message", "channel": "jam", "content": f"{filled + i}:x"}))
                    + encode_frame(OP_TEXT, json.dumps({"type": "Ping", "id": i})))
                self.assertEqual(pub.read_json(), {"type": "Pong", "id": i})
            sent += n
            after = wait_row(srv, slow, lambda r: r["messages_sent"] == base + sent,
                             f"{n} more messages to be handled")
            writes = after["write_calls"] - before["write_calls"]
            print(f"\nblocked subscriber: {n} messages queued with {writes} write calls "
                  f"({after['queued_bytes']} bytes queued)")
            # A write per message would be 500. Without reading, the socket
            # takes nothing more, so expect none; the slack covers a stray
            # EPOLLOUT (the kernel growing the send buffer), which costs one
            # sendmsg per 128 queued frames plus the one that finds it full.
            self.assertLessEqual(writes, 10, f"{writes} write calls for {n} messages to a "
                                             f"subscriber whose socket is full")
            self.assertGreater(after["queued_bytes"], 0)

            # It reads again: every message, in order, none lost, at
            # contiguous offsets.
            pos = Positions("the resumed subscriber")
            pos.subscribed(slow.subscribed)
            d = Deadline(60, f"the resumed subscriber did not get all {sent} messages")
            for i in range(sent):
                f = slow.read_frame(deadline=d)
                while f.opcode == OP_PING:
                    f = slow.read_frame(deadline=d)
                self.assertEqual(f.opcode, OP_TEXT, repr(f))
                want = f"{i}:{filler}" if i < filled else f"{i}:x"
                pos.message(json.loads(f.payload), "jam", want)
            self.assertEqual(srv.stats()["slow_consumer_disconnects_total"], 0)
            final = wait_row(srv, slow, lambda r: r["queued_bytes"] == 0, "the queue to drain")
            self.assertEqual(final["state"], "open")


if __name__ == "__main__":
    unittest.main()
