"""TransactWriteItems for moto without a deep copy of the tables.

moto takes a deep copy of every table a TransactWriteItems touches (items, stream records
and all) before it writes, to roll back on a failed condition. Each append to the event
store then costs O(the whole history), and a local stack slows down as it runs; and a
cancelled transaction restores the table from the copy, stream shard included, so stream
readers holding iterators to the old shard see no more records.

The conditions are checked first with nothing written: a cancelled transaction needs no
rollback, and one whose conditions all hold is applied without a copy. Anything unusual
goes to moto's own code. Where DynamoDB requests are serialised (devstack's launcher) this
is DynamoDB's isolation; elsewhere (LocalStack) it is no less isolated than moto's own code,
which also checks and writes without a lock.

Used by devstack's moto launcher (devstack/src/moto_launcher.py, which gets this file put
before it) and by the LocalStack provider plugin (providers.py).
"""


def install_checked_transactions():
    from moto.dynamodb.comparisons import get_filter_expression
    from moto.dynamodb.exceptions import (
        ConditionalCheckFailed,
        MultipleTransactionsException,
        TooManyTransactionsException,
        TransactionCanceledException,
    )
    from moto.dynamodb.models import DynamoDBBackend

    with_copies = DynamoDBBackend.transact_write_items

    def transact_write_items(self, transact_items):
        if len(transact_items) > 100:
            raise TooManyTransactionsException()
        plan = []
        seen = set()
        for item in transact_items:
            if len(item) != 1:
                return with_copies(self, transact_items)
            op_type, op = next(iter(item.items()))
            table_name = op.get("TableName")
            known = {"ConditionCheck", "Put", "Delete", "Update"}
            if op_type not in known or table_name not in self.tables:
                return with_copies(self, transact_items)
            table = self.get_table(table_name)
            if op_type == "Put":
                attrs = op["Item"]
                if table.hash_key_attr not in attrs or (
                    table.range_key_attr is not None and table.range_key_attr not in attrs
                ):
                    return with_copies(self, transact_items)
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
            if op_type == "Put":
                self.put_item(table_name, op["Item"])
            elif op_type == "Delete":
                self.delete_item(table_name, key)
            elif op_type == "Update":
                self.update_item(
                    table_name,
                    key,
                    update_expression=op["UpdateExpression"],
                    expression_attribute_names=op.get("ExpressionAttributeNames"),
                    expression_attribute_values=op.get("ExpressionAttributeValues"),
                )

    DynamoDBBackend.transact_write_items = transact_write_items
