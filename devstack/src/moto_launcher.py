# Starts moto server with DynamoDB requests serialised and two moto 5.2.5 bugs mended
# (DynamoDB streams after a cancelled transaction, FIFO receive order).
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

# DynamoDB Streams requests take the same lock, so a reader never sees the stream records
# of a transaction that is still running (and may be rolled back).
from moto.dynamodbstreams.responses import DynamoDBStreamsHandler  # noqa: E402

_streams_call_action = DynamoDBStreamsHandler.call_action


def _serialised_streams_call_action(self):
    with _lock:
        return _streams_call_action(self)


DynamoDBStreamsHandler.call_action = _serialised_streams_call_action

# A cancelled TransactWriteItems restores each table from a copy taken before it ran,
# stream shard included. The shard iterators that readers hold still point to the old
# shard, which then never sees another record: the stream goes silent for every poller.
# Keep the shard object readers know, with the restored (rolled back) records.
from moto.dynamodb.models import DynamoDBBackend  # noqa: E402

_transact_write_items = DynamoDBBackend.transact_write_items


def _transact_write_items_keeping_shards(self, *args, **kwargs):
    shards = {name: table.stream_shard for name, table in self.tables.items()}
    try:
        return _transact_write_items(self, *args, **kwargs)
    finally:
        for name, shard in shards.items():
            table = self.tables.get(name)
            if shard is None or table is None or table.stream_shard is shard:
                continue
            shard.items = table.stream_shard.items
            shard.table = table
            table.stream_shard = shard


DynamoDBBackend.transact_write_items = _transact_write_items_keeping_shards

# TransactWriteItems: conditions checked first, no deep copy of the tables
# (install_checked_transactions, from localstack/moto-dynamodb-provider/vitals_localstack/
# transactions.py, which devstack puts before this file; LocalStack's plugin uses it too).
install_checked_transactions()

# FIFO queues: a message whose visibility timeout has passed is no longer in flight. moto
# 5.2.5 forgets it as in flight only when its receive loop reaches it, one message at a
# time: when the first two messages of a group both become visible again, the loop skips
# the first (the second still counts as in flight) and then delivers the second, out of
# order. Forgetting every visible message as in flight before the loop looks (at each
# receive, and whenever the loop reads the visible messages) keeps the group order.
from moto.sqs.models import Queue, SQSBackend  # noqa: E402


def _forget_visible_in_flight(queue):
    for message in list(queue.pending_messages):
        if message.visible:
            queue.pending_messages.discard(message)


_visible_messages = Queue.messages.fget


def _messages(self):
    _forget_visible_in_flight(self)
    return _visible_messages(self)


Queue.messages = property(_messages)
_receive_message = SQSBackend.receive_message


def _receive_message_in_group_order(self, queue_name, *args, **kwargs):
    _forget_visible_in_flight(self.get_queue(queue_name))
    return _receive_message(self, queue_name, *args, **kwargs)


SQSBackend.receive_message = _receive_message_in_group_order

from moto.server import main  # noqa: E402

main(sys.argv[1:])
