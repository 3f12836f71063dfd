"""DynamoDB and DynamoDB Streams for LocalStack community on a host without Docker.

LocalStack's default DynamoDB provider runs DynamoDB Local (Java), which it downloads on
first use; where that download is not reachable, CreateTable fails after about a minute.
These providers implement no operation themselves: MotoFallbackDispatcher sends every
operation to the moto that LocalStack bundles, which supports conditions, transactions,
Query and Streams. Select them with PROVIDER_OVERRIDE_DYNAMODB=moto and
PROVIDER_OVERRIDE_DYNAMODBSTREAMS=moto.
"""

from localstack.services.plugins import Service, aws_provider


@aws_provider(api="dynamodb", name="moto")
def dynamodb_moto():
    from localstack.aws.api.dynamodb import DynamodbApi
    from localstack.services.moto import MotoFallbackDispatcher

    from vitals_localstack.transactions import install_checked_transactions

    # Conditions first, no deep copy: a cancelled transaction leaves the stream shard
    # (and its readers) alone, and appends do not cost the whole history.
    install_checked_transactions()

    class MotoDynamoDBProvider(DynamodbApi):
        """Every DynamoDB operation is served by moto."""

    return Service.for_provider(
        MotoDynamoDBProvider(), dispatch_table_factory=MotoFallbackDispatcher
    )


@aws_provider(api="dynamodbstreams", name="moto")
def dynamodbstreams_moto():
    from localstack.aws.api.dynamodbstreams import DynamodbstreamsApi
    from localstack.services.moto import MotoFallbackDispatcher

    class MotoDynamoDBStreamsProvider(DynamodbstreamsApi):
        """Every DynamoDB Streams operation is served by moto."""

    return Service.for_provider(
        MotoDynamoDBStreamsProvider(), dispatch_table_factory=MotoFallbackDispatcher
    )
