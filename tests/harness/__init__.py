"""The local proof harness: moto as AWS, a local Lambda service running the real binaries behind
the Lambda Runtime API, and a CloudFormation stand-in that sends real-shaped events and insists on
exactly one answer per request."""
