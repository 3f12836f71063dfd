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

# moto 5.2.5 takes a deep copy of every table a TransactWriteItems touches (items, stream
# records and all) before it writes, to roll back on a failed condition: each append to the
# event store then costs O(the whole history), and a local stack slows down as it runs.
# DynamoDB requests are serialised above, so the conditions can be checked first, with
# nothing written: a cancelled transaction needs no rollback, and one whose conditions all
# hold is applied without a copy. Anything unusual goes to moto's own code (with the copy).
from moto.dynamodb.comparisons import get_filter_expression  # noqa: E402
from moto.dynamodb.exceptions import (  # noqa: E402
    ConditionalCheckFailed,
    MultipleTransactionsException,
    TooManyTransactionsException,
    TransactionCanceledException,
)

_transact_with_copies = DynamoDBBackend.transact_write_items


def _transact_write_items_checked_first(self, transact_items):
    if len(transact_items) > 100:
        raise TooManyTransactionsException()
    plan = []
    seen = set()
    for item in transact_items:
        if len(item) != 1:
            return _transact_with_copies(self, transact_items)
        op_type, op = next(iter(item.items()))
        table_name = op.get("TableName")
        if op_type not in {"ConditionCheck", "Put", "Delete", "Update"} or table_name not in self.tables:
            return _transact_with_copies(self, transact_items)
        table = self.get_table(table_name)
        if op_type == "Put":
            attrs = op["Item"]
            if table.hash_key_attr not in attrs or (
                table.range_key_attr is not None and table.range_key_attr not in attrs
            ):
                return _transact_with_copies(self, transact_items)
            key = {table.hash_key_attr: attrs[table.hash_key_attr]}
            if table.range_key_attr is not None:
                key[table.range_key_attr] = attrs[table.range_key_attr]
        else:
            key = op["Key"]
        unique = (str(table_name), str(dict(sorted(key.items()))))
        if unique in seen:
            raise MultipleTransactionsException()
        seen.add(unique)
        plan.append((op_type, op, table_name, key))

    errors = []
    for op_type, op, table_name, key in plan:
        condition = op.get("ConditionExpression")
        if condition is None:
            errors.append((None, None, None))
            continue
        current = self.get_item(table_name, key)
        condition_op = get_filter_expression(
            condition,
            op.get("ExpressionAttributeNames"),
            op.get("ExpressionAttributeValues"),
        )
        if condition_op.expr(current):
            errors.append((None, None, None))
            continue
        original = None
        if op.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD" and current:
            original = current.to_json()["Attributes"]
        errors.append(
            ("ConditionalCheckFailed", str(ConditionalCheckFailed().message), original)
        )
    if any(code is not None for code, _, _ in errors):
        raise TransactionCanceledException(errors)

    for op_type, op, table_name, key in plan:
        names = op.get("ExpressionAttributeNames")
        values = op.get("ExpressionAttributeValues")
        if op_type == "Put":
            self.put_item(table_name, op["Item"])
        elif op_type == "Delete":
            self.delete_item(table_name, key)
        elif op_type == "Update":
            self.update_item(
                table_name,
                key,
                update_expression=op["UpdateExpression"],
                expression_attribute_names=names,
                expression_attribute_values=values,
            )


DynamoDBBackend.transact_write_items = _transact_write_items_checked_first

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
