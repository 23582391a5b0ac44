"""The domain's ports over AWS (DynamoDB, SQS, S3, EventBridge, Secrets Manager) and in memory (the domain tests'
stores): botocore's failures become domain errors here."""
