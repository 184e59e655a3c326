"""Print dfd alerts as they happen: python subscriber.py [ENDPOINT]. Needs only pyzmq."""

import json
import sys

import zmq

endpoint = sys.argv[1] if len(sys.argv) > 1 else "tcp://127.0.0.1:5555"
socket = zmq.Context().socket(zmq.SUB)
socket.connect(endpoint)
socket.setsockopt(zmq.SUBSCRIBE, b"alert")  # a prefix: alert.raised and alert.cleared
while True:
    topic, body = socket.recv_multipart()
    event = json.loads(body)
    fields = event["seq"], topic.decode(), event["call_id"], event["channel"], event["score"]
    print(*fields, flush=True)
