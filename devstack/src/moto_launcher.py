# Starts moto server with DynamoDB requests serialised.
#
# moto serves requests on threads, and its TransactWriteItems is not isolated between them:
# a cancelled transaction restores a snapshot of the table taken before it ran, erasing
# items that other threads committed in the meantime, and a check-then-write can interleave
# with another thread's. DynamoDB itself isolates transactions (serialisable per item), so
# one lock around every DynamoDB request restores the semantics the event store and the
# idempotency records rely on. Other services (SQS long polls) stay concurrent.
import sys
import threading

from moto.dynamodb.responses import DynamoHandler

_lock = threading.RLock()
_call_action = DynamoHandler.call_action


def _serialised_call_action(self):
    with _lock:
        return _call_action(self)


DynamoHandler.call_action = _serialised_call_action

from moto.server import main  # noqa: E402

main(sys.argv[1:])
