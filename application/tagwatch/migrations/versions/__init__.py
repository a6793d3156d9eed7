"""The revisions, numbered 0001, 0002, …: the number is the schema version /readyz reports."""
